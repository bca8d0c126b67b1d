/**
 * Lesson 12: the bounded outgoing queue (room.ts's ConnectionOutbox) on its
 * own, over a real loopback connection: the line that would pass
 * maxQueueBytes is refused, and after close nothing more goes out, whatever
 * is sent. The exercise runner imports the learner's room.ts here.
 */
import { assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { lessonModule } from "../tools/lesson_process.ts";
import { closeRaw, decode, readToEnd } from "./_helpers.ts";

/** A connected pair of TCP connections on loopback. */
async function pair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
}

interface Outbox {
  send(line: string): boolean;
  close(lastLine?: string, drop?: boolean): void;
  readonly done: Promise<void>;
}
type OutboxClass = new (
  conn: Deno.Conn,
  options: { maxQueueBytes: number; writeTimeoutMs: number; closeGraceMs?: number },
) => Outbox;

/** Short limits: a check never waits long, even on a broken outbox. */
const options = (maxQueueBytes: number) => ({
  maxQueueBytes,
  writeTimeoutMs: 2_000,
  closeGraceMs: 500,
});

/** Closes both ends; waits (2 s at most) for the outbox's writer to end. */
async function finish(outbox: Outbox, client: Deno.TcpConn): Promise<void> {
  outbox.close(undefined, true); // nothing if it is closed already
  closeRaw(client);
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    outbox.done,
    new Promise((resolve) => timer = setTimeout(resolve, 2_000)),
  ]);
  clearTimeout(timer);
}

test("lesson 12: the bounded outgoing queue, on its own", async (t) => {
  const room = await import(lessonModule("lessons/12-multi-user-chat/room.ts"));
  const ConnectionOutbox = room.ConnectionOutbox as OutboxClass;

  await t.step("a line that would pass maxQueueBytes is refused (send says false)", async () => {
    const [client, server] = await pair();
    const outbox = new ConnectionOutbox(server, options(10));
    try {
      // 9 bytes with its LF, then 2 more would be 11: over the bound of 10.
      assertEquals([outbox.send("12345678"), outbox.send("x")], [true, false]);
      outbox.close();
      assertEquals(decode(await readToEnd(client, 5_000)), "12345678\n");
    } finally {
      await finish(outbox, client);
    }
  });

  await t.step(
    "after close, a line sent is ignored (send says true, nothing goes out)",
    async () => {
      const [client, server] = await pair();
      const outbox = new ConnectionOutbox(server, options(1_000));
      try {
        outbox.send("hello");
        outbox.close("bye");
        assertEquals(outbox.send("too late"), true, "a closed queue is not a slow reader");
        assertEquals(decode(await readToEnd(client, 5_000)), "hello\nbye\n");
      } finally {
        await finish(outbox, client);
      }
    },
  );
});
