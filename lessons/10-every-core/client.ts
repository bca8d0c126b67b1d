/**
 * Lesson 10 client: the echo client of lessons 02 and 08, for lesson 10's port.
 *
 * It connects, sends the message, half-closes and prints the echo. With
 * `--clients N` it runs N clients at once, as lesson 08's client does: each
 * one gets its own connection, with its own source port, so the kernel may
 * hand each to a different worker of the server. To load the server hard,
 * use lesson 09's load mode:
 * `deno task lesson09-client --port 65410 --load --connections 100`.
 */
import {
  closeQuietly,
  connect,
  LessonError,
  parseFlags,
  quote,
  readAll,
  runMain,
  utf8Decode,
  utf8Encode,
  writeAll,
} from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 10,
    role: "client",
    summary: "Sends a message to the echo server, half-closes, and prints what comes back; " +
      "--clients N does it N times at once.",
    flags: {
      message: { type: "string", description: "the text to send", default: "Hello, world" },
      clients: {
        type: "number",
        description: "how many clients to run at the same time",
        default: 1,
        min: 1,
        max: 10_000,
        value: "N",
      },
    },
    epilog: "Example: deno task lesson10-client --clients 10",
  });
  const payload = utf8Encode(flags.message);
  const endpoint = { host: flags.host, port: flags.port, lesson: 10 };

  /** One client: connect, send, half-close, read the echo until EOF. */
  async function once(): Promise<string> {
    const conn = await connect(endpoint);
    try {
      await writeAll(conn, payload);
      await conn.closeWrite();
      const reply = await readAll(conn, {
        maxBytes: Math.max(payload.length, 1024),
        idleTimeoutMs: 10_000,
      });
      return utf8Decode(reply);
    } finally {
      closeQuietly(conn);
    }
  }

  const replies = await Promise.all(Array.from({ length: flags.clients }, once));
  if (flags.clients === 1) {
    console.log(`Received ${quote(replies[0])}`);
    return;
  }
  const echoed = replies.filter((reply) => reply === flags.message).length;
  if (echoed !== replies.length) {
    throw new LessonError(
      `${replies.length - echoed} of ${replies.length} clients got a wrong echo`,
    );
  }
  console.log(`${replies.length} clients, all echoed ${quote(flags.message)}`);
});
