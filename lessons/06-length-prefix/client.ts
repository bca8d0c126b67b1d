/**
 * Lesson 06 client: send length-prefixed frames, check every answer.
 *
 * Frames come from `--message` texts and `--sizes` (random payloads of those
 * sizes). For each frame the server answers with its number, length and
 * SHA-256; the client computes the same digest and prints whether they match.
 */
import {
  connect,
  describeNetError,
  encodeFrame,
  LessonError,
  parseFlags,
  plural,
  quote,
  randomBytes,
  readFrames,
  runMain,
  timeoutFlag,
  UsageError,
  utf8Decode,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";
import { sha256Hex } from "./digest.ts";

/** The largest random payload --sizes accepts (the server's default limit is 1 MiB). */
const MAX_SIZE = 64 * 1024 * 1024;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 6,
    role: "client",
    summary: "Sends length-prefixed frames (texts and random payloads) and checks the " +
      "server's answer to each: number, length and SHA-256.",
    flags: {
      message: { type: "list", description: "a text to send as one frame", value: "TEXT" },
      sizes: {
        type: "string",
        description: "random payloads of these sizes, comma-separated, e.g. 0,1,1000,1000000",
        value: "LIST",
      },
      timeout: timeoutFlag(10),
    },
  });
  // What to send: each frame with a short label for the output.
  const frames = [
    ...flags.message.map((text) => ({ label: quote(text), payload: utf8Encode(text) })),
    ...parseSizes(flags.sizes).map((size) => ({
      label: "random",
      payload: randomBytes(size),
    })),
  ];
  if (frames.length === 0) frames.push({ label: quote("Hello"), payload: utf8Encode("Hello") });

  using conn = await connect({ host: flags.host, port: flags.port, lesson: 6 });
  const timeoutMs = flags.timeout * 1000;

  const send = async () => {
    try {
      for (const frame of frames) await writeAll(conn, encodeFrame(frame.payload));
      await conn.closeWrite();
    } catch (error) {
      // The server hung up (e.g. a frame over its limit). Don't report the
      // failed write: `check` reads the server's error frame and says why.
      if (describeNetError(error) === undefined) throw error;
    }
  };
  const check = async () => {
    let n = 0;
    // Answers are small; a 1 KiB limit protects us from a confused server.
    for await (
      const answer of readFrames(conn, {
        maxFrameBytes: 1024,
        idleTimeoutMs: timeoutMs,
        what: "the server",
      })
    ) {
      const text = utf8Decode(answer, "the answer");
      if (text.startsWith("error: ")) throw new LessonError(`the server said: ${text.slice(7)}`);
      const frame = frames[n++];
      if (!frame) throw new LessonError(`the server answered a frame we did not send: ${text}`);
      const expected = `frame ${n}: ${
        plural(frame.payload.length, "byte")
      }, sha256 ${await sha256Hex(
        frame.payload,
      )}`;
      if (text !== expected) throw new LessonError(`frame ${n}: wrong answer: ${text}`);
      console.log(
        `frame ${n}: ${frame.label}, ${plural(frame.payload.length, "byte")}, sha256 matches`,
      );
    }
    if (n === 0) throw new LessonError("the server closed the connection before answering");
    if (n < frames.length) {
      throw new LessonError(`the server answered ${n} of ${frames.length} frames`);
    }
  };
  // Send and check at the same time (large frames would fill both buffers
  // otherwise), with one deadline for all the answers (see lesson 02).
  await withDeadline(conn, timeoutMs, "the answers", () => Promise.all([send(), check()]));
});

function parseSizes(list: string | undefined): number[] {
  if (list === undefined) return [];
  return list.split(",").map((item) => {
    const size = Number(item.trim());
    if (item.trim() === "" || !Number.isInteger(size) || size < 0 || size > MAX_SIZE) {
      throw new UsageError(
        `--sizes takes whole numbers from 0 to ${MAX_SIZE}, got ${JSON.stringify(item)}`,
      );
    }
    return size;
  });
}
