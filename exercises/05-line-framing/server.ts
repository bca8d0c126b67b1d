// deno-lint-ignore-file no-unused-vars -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 05: the framed read loop is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 05`:
 * lesson 05's own tests check your file in the lesson's place.
 *
 * Lesson 05 server: one message per line.
 *
 * TCP delivers a stream of bytes: one write by the client may arrive as
 * several reads here, and several writes as one read. So the server does not
 * treat a read as a message; it collects bytes until a newline (LF), and each
 * complete line is one message. It answers each line with one line: the line
 * number and the text reversed. `/bye` gets `bye` and the connection closes.
 *
 * `--naive` turns framing off (each read is taken as one message) so you can
 * watch it go wrong with the client's `--split` and `--burst`.
 */
import {
  closeQuietly,
  DEFAULT_MAX_LINE_BYTES,
  describeNetError,
  type Flags,
  formatAddr,
  idleTimeoutFlag,
  LessonError,
  listen,
  maxConnectionsFlag,
  parseFlags,
  peerLog,
  plural,
  readChunks,
  readLines,
  runMain,
  serveEach,
  utf8Decode,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";

/** Lesson 05's flags (lesson 17 serves the same lines over a Unix socket, with these). */
export const SERVER_FLAGS = {
  naive: { type: "boolean", description: "no framing: treat each read as one message (buggy)" },
  "max-line": {
    type: "number",
    description: "longest line accepted, in bytes",
    default: DEFAULT_MAX_LINE_BYTES,
    min: 1,
    value: "BYTES",
  },
  "idle-timeout": idleTimeoutFlag(300),
  "max-connections": maxConnectionsFlag(500),
} as const;

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 5,
      role: "server",
      summary: "Answers each line with its number and the text reversed; /bye closes. " +
        "Serves many clients at once.",
      flags: SERVER_FLAGS,
    });
    const listener = listen({ host: flags.host, port: flags.port, lesson: 5 });
    await serveLines(listener, flags);
  });
}

/**
 * Serves every connection `listener` accepts until it is closed. Each one
 * runs on its own, so clients are served at the same time (lesson 08 explains
 * how), at most --max-connections of them. Lesson 17 passes a Unix listener.
 */
export async function serveLines<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  flags: Omit<Flags<typeof SERVER_FLAGS>, "host" | "port" | "positionals">,
): Promise<void> {
  const options = {
    maxLineBytes: flags["max-line"],
    idleTimeoutMs: flags["idle-timeout"] * 1000,
    what: "the client",
  };
  await serveEach(listener, (conn) => serve(conn, flags.naive, options), {
    maxConnections: flags["max-connections"],
    busyReply: utf8Encode("error: server busy\n"), // an error line, like the others
  });
}

/** The answer to line number `n`: `3: olleH` for "Hello" (lesson 15 uses it too). */
export function answer(n: number, text: string): string {
  // Reverse by character, not by UTF-16 unit, so 🌮 stays whole.
  return `${n}: ${[...text].reverse().join("")}`;
}

async function serve(
  conn: Deno.Conn,
  naive: boolean,
  options: { maxLineBytes: number; idleTimeoutMs: number; what: string },
) {
  const peer = formatAddr(conn.remoteAddr);
  peerLog.event(`connection from ${peer}`);
  let count = 0;
  // A client that sends lines but never reads the answers would make a plain
  // writeAll wait for ever: a write that makes no progress for the idle
  // timeout closes the connection.
  const send = (line: string) =>
    writeAllWithTimeout(conn, utf8Encode(line + "\n"), options.idleTimeoutMs, options.what);
  try {
    if (naive) {
      // The bug: one read is NOT one message. Whatever this read happened to
      // contain (half a line, or three lines) is answered as one "message".
      for await (const chunk of readChunks(conn, options)) {
        await send(answer(++count, utf8Decode(chunk).replace(/\r?\n$/, "")));
      }
    } else {
      // TODO(exercise): take the stream line by line (readLines(conn, options)
      // collects bytes until LF, whatever the reads were) and `send` each line's
      // `answer(++count, line)`; "/bye" gets "bye" and ends the loop.
    }
    peerLog.event(`closed connection from ${peer} after ${plural(count, "message")}`);
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    // A line over the limit (or not UTF-8): tell the client, then hang up.
    // The rest of the stream cannot be trusted, so we do not read on.
    if (error instanceof LessonError) await send(`error: ${reason}`).catch(() => {});
    peerLog.event(`closed connection from ${peer} after ${plural(count, "message")}: ${reason}`);
  } finally {
    closeQuietly(conn);
  }
}
