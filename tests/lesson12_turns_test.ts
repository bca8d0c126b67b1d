/**
 * Lesson 12 reads in turns (lib/turns.ts): with more users than turns all
 * talking at once, and as many silent ones holding reads, every user still
 * gets every answer. No timing is asserted (bench/fairness.ts --protocol chat
 * measures the fairness); this checks that the turns lose nobody.
 */
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { LineDecoder } from "../lib/lines.ts";
import { READ_TURNS } from "../lib/turns.ts";
import { closeRaw, encode, LessonServer, rawConnect } from "./_helpers.ts";

/** Reads lines until `wanted` have all come (others, such as `joined NAME`, are skipped). */
async function expectLines(conn: Deno.Conn, wanted: string[], timeoutMs = 10_000) {
  const decoder = new LineDecoder(1 << 20);
  const buffer = new Uint8Array(64 * 1024);
  const missing = new Set(wanted);
  while (missing.size > 0) {
    const n = await readWithTimeout(conn, buffer, timeoutMs, `the lines ${[...missing]}`);
    if (n === null) throw new Error(`EOF while waiting for ${[...missing].join(", ")}`);
    for (const line of decoder.push(buffer.subarray(0, n))) missing.delete(line);
  }
}

Deno.test("lesson 12 reads in turns: more busy users than turns, behind silent ones, all answered", async () => {
  await using server = await LessonServer.start("lesson12-server");
  // 100 busy behind 100 silent: 200 reads at once is a crowd (reads queue from
  // QUEUE_FROM, 112), with more busy users than turns (READ_TURNS, 64).
  const count = READ_TURNS + 36;
  const open = () => Promise.all(Array.from({ length: count }, () => rawConnect(server.port)));
  const silent = await open(); // connected, never a word: each leaves a read waiting
  const busy = await open();
  try {
    // One at a time, so each sees its own `ok name` among the `joined` lines of later ones.
    for (const [i, conn] of busy.entries()) {
      await writeAll(conn, encode(`/name u${i}\n`));
      await expectLines(conn, [`ok name u${i}`]);
    }
    // Everyone at once, twice: each sends itself a message and must get both lines back.
    for (const round of [1, 2]) {
      await Promise.all(busy.map((conn, i) => writeAll(conn, encode(`/to u${i} r${round}\n`))));
      await Promise.all(
        busy.map((conn, i) => expectLines(conn, [`from u${i} r${round}`, `ok sent u${i}`])),
      );
    }
    // A silent one that speaks at last is answered too.
    await writeAll(silent[0], encode("/users\n"));
    await expectLines(silent[0], ["error no-name send /name NAME first"]);
  } finally {
    [...silent, ...busy].forEach(closeRaw);
  }
});
