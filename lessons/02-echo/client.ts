/**
 * Lesson 02 client: send a message, half-close, read the echo until EOF.
 */
import {
  connect,
  LessonError,
  parseFlags,
  quote,
  randomBytes,
  readAll,
  runMain,
  utf8Decode,
  utf8Encode,
  writeAll,
} from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 2,
    role: "client",
    summary: "Sends a message to the echo server, half-closes, and prints what comes back.",
    flags: {
      message: { type: "string", description: "the text to send", default: "Hello, world" },
      size: {
        type: "number",
        description: "send this many random bytes instead, and check the echo is identical",
        max: 256 * 1024 * 1024,
        value: "BYTES",
      },
    },
  });
  const payload = flags.size === undefined ? utf8Encode(flags.message) : randomBytes(flags.size);

  using conn = await connect({ host: flags.host, port: flags.port, lesson: 2 });

  // Send and read at the same time: with a large payload the server's replies
  // fill our receive buffer while we are still sending, and if we did not read,
  // both sides would wait for each other forever.
  const sending = async () => {
    await writeAll(conn, payload);
    // Half-close: "I have nothing more to send". The server sees EOF, and the
    // connection stays open in the other direction for the echo.
    await conn.closeWrite();
  };
  const [reply] = await Promise.all([
    readAll(conn, { maxBytes: payload.length, idleTimeoutMs: 10_000, what: "the echo" }),
    sending(),
  ]);

  if (flags.size === undefined) {
    console.log(`Received ${quote(utf8Decode(reply, "the echo"))}`);
  } else if (reply.length === payload.length && reply.every((b, i) => b === payload[i])) {
    console.log(`Received ${reply.length} bytes, identical to what was sent`);
  } else {
    throw new LessonError(`the echo differs: sent ${payload.length} bytes, got ${reply.length}`);
  }
});
