// deno-lint-ignore-file no-unused-vars prefer-const -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 06: reading and answering frames is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 06`:
 * lesson 06's own tests check your file in the lesson's place.
 *
 * Lesson 06 server: length-prefixed frames.
 *
 * Each message (a "frame") is a 4-byte length, big-endian ("network byte
 * order"), followed by exactly that many bytes, which may be anything:
 * text, images, other frames. The server answers every frame with a frame
 * that describes it: its number, its length and its SHA-256 digest, so the
 * client can check that every byte arrived.
 *
 * A header that announces more than `--max-frame` bytes gets an error frame
 * and the connection closes at once: we never allocate or wait for the body.
 */
import {
  closeQuietly,
  DEFAULT_MAX_FRAME_BYTES,
  describeNetError,
  encodeFrame,
  formatAddr,
  idleTimeoutFlag,
  listen,
  maxConnectionsFlag,
  parseFlags,
  peerLog,
  plural,
  readFrames,
  runMain,
  serveEach,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import { sha256Hex } from "./digest.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 6,
    role: "server",
    summary: "Answers each length-prefixed frame with its number, length and SHA-256.",
    flags: {
      "max-frame": {
        type: "number",
        description: "largest frame accepted, in bytes",
        default: DEFAULT_MAX_FRAME_BYTES,
        value: "BYTES",
      },
      "idle-timeout": idleTimeoutFlag(300),
      "max-connections": maxConnectionsFlag(500),
    },
  });
  const options = {
    maxFrameBytes: flags["max-frame"],
    idleTimeoutMs: flags["idle-timeout"] * 1000,
    what: "the client",
  };
  const listener = listen({ host: flags.host, port: flags.port, lesson: 6 });
  // Many clients at once (lesson 08), at most --max-connections of them.
  await serveEach(listener, (conn) => serve(conn, options), {
    maxConnections: flags["max-connections"],
    busyReply: encodeFrame(utf8Encode("error: server busy")), // a frame, like every answer
  });
});

async function serve(
  conn: Deno.TcpConn,
  options: { maxFrameBytes: number; idleTimeoutMs: number; what: string },
) {
  const peer = formatAddr(conn.remoteAddr);
  peerLog.event(`connection from ${peer}`);
  let count = 0;
  let bytes = 0;
  // A client that never reads its answers is closed after the idle timeout.
  const reply = (text: string) =>
    writeAllWithTimeout(conn, encodeFrame(utf8Encode(text)), options.idleTimeoutMs, options.what);
  try {
    // TODO(exercise): for each frame (a 4-byte big-endian length, then exactly that
    // many bytes: readFrames(conn, options) reads them, within --max-frame), count
    // it in `count` and `bytes` and `reply` with
    // `frame N: 5 bytes, sha256 HEX` (plural() and sha256Hex() are imported).
    peerLog.event(
      `closed connection from ${peer} after ${plural(count, "frame")}, ${plural(bytes, "byte")}`,
    );
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    // Too large or cut short: say why, then hang up. After a bad length there
    // is no way to find where the next frame starts.
    await reply(`error: ${reason}`).catch(() => {});
    peerLog.event(`closed connection from ${peer} after ${plural(count, "frame")}: ${reason}`);
  } finally {
    closeQuietly(conn);
  }
}
