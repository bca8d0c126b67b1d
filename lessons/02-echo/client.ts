/**
 * Lesson 02 client: send a message, half-close, read the echo until EOF, and
 * check that the echo is exactly what was sent.
 */
import {
  connect,
  LessonError,
  parseFlags,
  quote,
  randomBytes,
  readAll,
  runMain,
  timeoutFlag,
  utf8Decode,
  utf8Encode,
  withDeadline,
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
      timeout: timeoutFlag(10),
    },
  });
  const payload = flags.size === undefined ? utf8Encode(flags.message) : randomBytes(flags.size);
  const timeoutMs = flags.timeout * 1000;

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
  // A deadline for the whole echo, not just for each read: a server that
  // sends one byte every few seconds must not keep us waiting for ever.
  const [reply] = await withDeadline(conn, timeoutMs, "the echo", () =>
    Promise.all([
      readAll(conn, { maxBytes: payload.length, idleTimeoutMs: timeoutMs, what: "the echo" }),
      sending(),
    ]));

  checkEcho(payload, reply);
  if (flags.size === undefined) {
    console.log(`Received ${quote(utf8Decode(reply, "the echo"))}`);
  } else {
    console.log(`Received ${reply.length} bytes, identical to what was sent`);
  }
});

/** Throws a one-line error unless `reply` is exactly `sent`. */
function checkEcho(sent: Uint8Array, reply: Uint8Array) {
  if (reply.length === 0 && sent.length > 0) {
    throw new LessonError("the server closed the connection before answering");
  }
  // (A longer echo never gets here: readAll stops at `sent.length` bytes.)
  if (reply.length < sent.length) {
    throw new LessonError(`the echo is short: sent ${sent.length} bytes, got ${reply.length}`);
  }
  const at = reply.findIndex((byte, i) => byte !== sent[i]);
  if (at !== -1) throw new LessonError(`the echo differs from what was sent at byte ${at}`);
}
