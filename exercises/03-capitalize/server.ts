// deno-lint-ignore-file no-unused-vars prefer-const -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 03: decoding the stream is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 03`:
 * lesson 03's own tests check your file in the lesson's place.
 *
 * Lesson 03 server: bytes are not text.
 *
 * It uppercases UTF-8 text as it streams in: each chunk is decoded, uppercased
 * and sent back as soon as it arrives. A chunk may end in the middle of a
 * character (🌮 is 4 bytes); the streaming decoder keeps those bytes until the
 * rest arrives. Bytes that are not UTF-8 get a one-line error reply.
 */
import {
  acceptConnections,
  closeQuietly,
  describeNetError,
  formatAddr,
  idleTimeoutFlag,
  listen,
  parseFlags,
  peerLog,
  readChunks,
  runMain,
  ThrottledLog,
  utf8Encode,
  Utf8Error,
  Utf8StreamDecoder,
  writeAllWithTimeout,
} from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 3,
    role: "server",
    summary: "Uppercases the UTF-8 text each client sends, as it arrives.",
    flags: {
      "idle-timeout": idleTimeoutFlag(60),
    },
  });
  const listener = listen({ host: flags.host, port: flags.port, lesson: 3 });
  // One client at a time, as in lesson 02; a failed accept does not stop the loop.
  // At most 20 notes a second (lib/log.ts): a flood of resets cannot flood the log.
  const acceptLog = new ThrottledLog();
  const onError = (line: string) => acceptLog.event(line);
  for await (const conn of acceptConnections(listener, { onError })) {
    await capitalize(conn, flags["idle-timeout"] * 1000);
  }
});

async function capitalize(conn: Deno.TcpConn, idleTimeoutMs: number) {
  const peer = formatAddr(conn.remoteAddr);
  peerLog.event(`connection from ${peer}`);
  const decoder = new Utf8StreamDecoder("the text you sent");
  let bytesIn = 0;
  let bytesOut = 0;
  // Uppercase some text and send it. A client that does not read it gets the
  // idle timeout for writing too (as in lesson 02: everyone else is waiting).
  const send = (bytes: Uint8Array) => writeAllWithTimeout(conn, bytes, idleTimeoutMs, "the client");
  const reply = async (text: string) => {
    const bytes = utf8Encode(text.toUpperCase());
    await send(bytes);
    bytesOut += bytes.length;
  };
  try {
    // TODO(exercise): for each chunk readChunks yields, add its length to `bytesIn`
    // and `reply` at once with the text `decoder` makes of it (it keeps half a
    // character for the next chunk); at EOF, reply with `decoder.end()`.
    peerLog.event(`capitalized ${bytesIn} bytes into ${bytesOut} bytes for ${peer}`);
  } catch (error) {
    if (error instanceof Utf8Error) {
      peerLog.event(`${peer} sent bytes that are not UTF-8: replied with an error`);
      await send(utf8Encode(`error: ${error.message}\n`)).catch(() => {});
    } else {
      const reason = describeNetError(error);
      if (reason === undefined) throw error;
      peerLog.event(`connection from ${peer} failed: ${reason}`);
    }
  } finally {
    closeQuietly(conn);
    peerLog.event(`closed connection from ${peer}`);
  }
}
