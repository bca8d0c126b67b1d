/**
 * ReadTurns from lib/turns.ts (in a crowd, at most N reads waiting in Deno at once,
 * the others queued; a silent read's turn taken back), alone with fake connections and
 * in the real server with more clients than turns. No timing is asserted:
 * only who was read, in what order, and that every echo came back.
 */
import { assertEquals, assertRejects } from "@std/assert";
import { QUEUE_FROM, ReadTurns } from "../lib/turns.ts";
import { writeAll } from "../lib/io.ts";
import { closeRaw, encode, LessonServer, rawConnect, readExactly, sleep } from "./_helpers.ts";

/** A connection whose reads we answer by hand; `started` lists which reads reached it. */
function fakeConn(name: string, started: string[]) {
  let answer: ((n: number | null) => void) | undefined;
  let fail: ((error: Error) => void) | undefined;
  return {
    read(_buffer: Uint8Array): Promise<number | null> {
      started.push(name);
      return new Promise((resolve, reject) => [answer, fail] = [resolve, reject]);
    },
    answer: (n: number | null) => answer!(n),
    fail: (error: Error) => fail!(error),
  };
}

/** Lets pending promise callbacks run. */
const settle = () => sleep(0);

/** Waits until `done()` holds, up to `ms` (then fails with `what`). */
async function waitFor(done: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(5);
  }
}

Deno.test("ReadTurns: over the limit, reads queue and get their turns in order", async () => {
  const turns = new ReadTurns({ max: 2, queueFrom: 2 });
  const started: string[] = [];
  const [a, b, c, d] = ["a", "b", "c", "d"].map((name) => fakeConn(name, started));
  const buffer = new Uint8Array(8);
  const reads = [a, b, c, d].map((conn) => turns.read(conn, buffer));
  await settle();
  assertEquals(started, ["a", "b"]); // c and d wait for a turn
  assertEquals(turns.counts, { holding: 2, queued: 2 });
  b.answer(5);
  assertEquals(await reads[1], 5);
  await settle();
  assertEquals(started, ["a", "b", "c"]); // b's turn went to the first in the queue
  a.fail(new Deno.errors.ConnectionReset("reset"));
  await assertRejects(() => reads[0], Deno.errors.ConnectionReset);
  await settle();
  assertEquals(started, ["a", "b", "c", "d"]); // a failed read gives its turn back too
  c.answer(null);
  d.answer(1);
  assertEquals(await Promise.all([reads[2], reads[3]]), [null, 1]);
  assertEquals(turns.counts, { holding: 0, queued: 0 });
  turns.stop();
});

Deno.test("ReadTurns: below the crowd no read queues; in a crowd the turns drain to max first", async () => {
  const turns = new ReadTurns({ max: 2, queueFrom: 4 });
  const started: string[] = [];
  const conns = ["a", "b", "c", "d", "e", "f"].map((name) => fakeConn(name, started));
  const [a, b, c, d, e, f] = conns;
  const buffer = new Uint8Array(8);
  const reads = [a, b, c, d].map((conn) => turns.read(conn, buffer));
  await settle();
  assertEquals(started, ["a", "b", "c", "d"]); // 4 at once: not a crowd yet
  const readE = turns.read(e, buffer);
  await settle();
  assertEquals(turns.counts, { holding: 4, queued: 1 }); // the fifth is a crowd: it queues
  a.answer(1);
  b.answer(1);
  assertEquals(await Promise.all([reads[0], reads[1]]), [1, 1]);
  await settle();
  // Two turns ended, but 4 were out: they drain to max (2) before any passes on.
  assertEquals(started, ["a", "b", "c", "d"]);
  assertEquals(turns.counts, { holding: 2, queued: 1 });
  c.answer(1);
  assertEquals(await reads[2], 1);
  await settle();
  assertEquals(started, ["a", "b", "c", "d", "e"]); // now c's turn passes to e
  assertEquals(turns.counts, { holding: 2, queued: 0 });
  // The queue is empty again: reads go straight in, up to 4 at once.
  const readF = turns.read(f, buffer);
  await settle();
  assertEquals(started, ["a", "b", "c", "d", "e", "f"]);
  assertEquals(turns.counts, { holding: 3, queued: 0 });
  d.answer(null);
  e.answer(2);
  f.answer(3);
  assertEquals(await Promise.all([reads[3], readE, readF]), [null, 2, 3]);
  assertEquals(turns.counts, { holding: 0, queued: 0 });
  turns.stop();
});

Deno.test("ReadTurns: a silent client's read gives its turn back and still gets its data", async () => {
  const turns = new ReadTurns({ max: 1, queueFrom: 1, tickMs: 5 });
  const started: string[] = [];
  const silent = fakeConn("silent", started);
  const next = fakeConn("next", started);
  const buffer = new Uint8Array(8);
  const silentRead = turns.read(silent, buffer);
  const nextRead = turns.read(next, buffer);
  await settle();
  assertEquals(started, ["silent"]);
  // After 2 ticks of the timer the turn is taken back: the next read starts.
  await waitFor(() => started.length === 2, "the queued read to start");
  assertEquals(started, ["silent", "next"]);
  next.answer(3);
  assertEquals(await nextRead, 3);
  silent.answer(7); // the silent one, uncounted, still gets its answer
  assertEquals(await silentRead, 7);
  assertEquals(turns.counts, { holding: 0, queued: 0 });
  turns.stop(); // the timer stopped itself already (nothing held); stop is harmless
});

Deno.test("lesson 08 reads in turns: more busy clients than read turns are all echoed, with silent clients holding reads", async () => {
  await using server = await LessonServer.start("lesson08-server", ["--quiet"]);
  // The silent ones alone are a crowd (from 112 reads at once, reads queue),
  // and the busy ones are almost twice as many as the turns (READ_TURNS, 64).
  const total = QUEUE_FROM + 2;
  const open = (n: number) => Promise.all(Array.from({ length: n }, () => rawConnect(server.port)));
  // The silent ones each leave a read waiting in the server, holding a turn until it is taken back.
  const silent = await open(total);
  const busy = await open(total);
  try {
    await sleep(50); // let the server start their reads
    // Every busy client sends at once, three rounds: more ready sockets than turns.
    for (let round = 0; round < 3; round++) {
      const messages = busy.map((_, i) => encode(`round ${round} client ${i}\n`));
      await Promise.all(busy.map((conn, i) => writeAll(conn, messages[i])));
      const echoes = await Promise.all(
        busy.map((conn, i) => readExactly(conn, messages[i].length)),
      );
      assertEquals(echoes, messages);
    }
    // A silent client that speaks at last is still echoed.
    const late = encode("late\n");
    await writeAll(silent[0], late);
    assertEquals(await readExactly(silent[0], late.length), late);
  } finally {
    [...silent, ...busy].forEach(closeRaw);
  }
});
