/**
 * Lesson 02: the echo survives a client that reads slowly. Every time the
 * client pauses, the server's socket buffer fills, and the write that fills
 * it sends only part of its chunk: a server that does not write the rest
 * (`conn.write(chunk)` alone) loses bytes here on every run, not only when
 * the machine happens to be busy.
 */
import { test } from "./_checks.ts";
import { assertBytes } from "./_bytes.ts";
import { writeAll } from "../lib/io.ts";
import { closeRaw, LessonServer, randomBytes, rawConnect, sleep } from "./_helpers.ts";

/** Reads to EOF, pausing `pauseMs` after every `burst` bytes; throws after `timeoutMs`. */
async function readSlowly(
  conn: Deno.Conn,
  burst: number,
  pauseMs: number,
  timeoutMs: number,
): Promise<Uint8Array> {
  const deadline = Date.now() + timeoutMs;
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  let total = 0, sincePause = 0;
  while (true) {
    if (Date.now() > deadline) {
      throw new Error(`no EOF within ${timeoutMs} ms (${total} bytes came)`);
    }
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
    total += n;
    sincePause += n;
    if (sincePause >= burst) {
      sincePause = 0;
      await sleep(pauseMs); // meanwhile the server's send buffer fills up
    }
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) all.set(chunk, at), at += chunk.length;
  return all;
}

test("lesson 02: a client that reads slowly still gets every byte back", async (t) => {
  await using server = await LessonServer.start("lesson02-server");
  await t.step("8 MiB, the client pausing after every 256 KiB it reads", async () => {
    const conn = await rawConnect(server.port);
    try {
      const payload = randomBytes(8 * 1024 * 1024);
      const sending = writeAll(conn, payload).then(() => conn.closeWrite());
      const echoed = await readSlowly(conn, 256 * 1024, 20, 30_000);
      await sending;
      assertBytes(echoed, payload, "the echo");
    } finally {
      closeRaw(conn);
    }
  });
});
