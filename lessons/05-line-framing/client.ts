/**
 * Lesson 05 client: send lines, print the answers.
 *
 * The lines come from repeated `--message` flags, or from standard input.
 * How they are written is up to you: one write per line (the default),
 * `--split` (each line in 2-byte pieces with pauses between them), or
 * `--burst` (all lines in a single write). A framed server answers the same
 * either way; the `--naive` server does not.
 */
import { concat } from "@std/bytes";
import {
  connect,
  describeNetError,
  type Flags,
  LessonError,
  parseFlags,
  readLines,
  runMain,
  terminalSafe,
  timeoutFlag,
  UsageError,
  utf8Decode,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";

/** The most input we read from a pipe. */
const MAX_INPUT_BYTES = 1024 * 1024;
/** How big the --split pieces are, and the pause between them. */
const PIECE_BYTES = 2;
const PAUSE_MS = 20;

/** Lesson 05 client's flags (lesson 17's client has them too). */
export const CLIENT_FLAGS = {
  message: { type: "list", description: "a line to send", value: "TEXT" },
  split: { type: "boolean", description: `write each line in ${PIECE_BYTES}-byte pieces` },
  burst: { type: "boolean", description: "write all lines in one single write" },
  timeout: timeoutFlag(10),
} as const;

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 5,
      role: "client",
      summary: "Sends lines to the lesson 05 server and prints each answer line. " +
        "Lines come from --message (repeatable) or standard input.",
      flags: CLIENT_FLAGS,
    });
    await talk(flags, () => connect({ host: flags.host, port: flags.port, lesson: 5 }));
  });
}

/**
 * Sends the lines (from --message, or standard input) over the connection
 * that `open` makes and prints the answers. Lesson 17 opens a Unix socket.
 */
export async function talk(
  flags: Omit<Flags<typeof CLIENT_FLAGS>, "host" | "port" | "positionals">,
  open: () => Promise<Deno.Conn>,
): Promise<void> {
  if (flags.split && flags.burst) throw new UsageError("choose --split or --burst, not both");
  const lines = flags.message.length > 0 ? flags.message : await readStdinLines();
  for (const line of lines) console.log(`> ${line}`);
  const bytes = lines.map((line) => utf8Encode(line + "\n"));

  using conn = await open();
  const timeoutMs = flags.timeout * 1000;

  // Write and read at the same time (a reply can arrive before we finish
  // sending), and wait for both: a task that is started and never awaited
  // would crash the program with a stack trace when it fails.
  await withDeadline(conn, timeoutMs, "the answers", () =>
    Promise.all([
      send(conn, bytes, flags),
      receive(conn, lines, bytes.reduce((sum, line) => sum + line.length, 0), timeoutMs),
    ]));
}

/** Writes the lines, one write each, in `--split` pieces, or in one `--burst`. */
async function send(
  conn: Deno.Conn,
  bytes: Uint8Array[],
  how: { split: boolean; burst: boolean },
) {
  try {
    if (how.burst) {
      // All lines in one write: the server will likely get them in one read.
      await writeAll(conn, concat(bytes));
    } else {
      for (const line of bytes) {
        if (!how.split) {
          await writeAll(conn, line);
          continue;
        }
        // Tiny pieces with pauses: the server gets "He", then "ll", then "o\n".
        for (let i = 0; i < line.length; i += PIECE_BYTES) {
          await writeAll(conn, line.subarray(i, i + PIECE_BYTES));
          await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
        }
      }
    }
    await conn.closeWrite(); // no more lines: the server answers the rest and closes
  } catch (error) {
    // The server hung up early (after `/bye`, or an error line). Say nothing
    // about the failed write: `receive` reads what the server said.
    if (describeNetError(error) === undefined) throw error;
  }
}

/**
 * Prints the answers until the server closes, and checks there are as many
 * as there should be. A framed server answers each line once, up to `/bye`.
 * The `--naive` one answers each read instead, and a read brings at least one
 * byte, so even it cannot send more answer lines than we sent bytes: more
 * than that, and we stop listening.
 */
async function receive(conn: Deno.Conn, lines: string[], sentBytes: number, timeoutMs: number) {
  const bye = lines.indexOf("/bye");
  const expected = bye === -1 ? lines.length : bye + 1;
  let count = 0;
  // requireNewline: a last answer without its LF was cut short, and is an error, not an answer.
  const limits = { idleTimeoutMs: timeoutMs, what: "the server", requireNewline: true };
  for await (const answer of readLines(conn, limits)) {
    if (answer.startsWith("error: ")) throw new LessonError(`the server said: ${answer.slice(7)}`);
    if (++count > sentBytes) {
      throw new LessonError(`the server sent more answers than we sent bytes (${sentBytes})`);
    }
    console.log(`< ${terminalSafe(answer)}`);
    if (answer === "bye" && bye !== -1 && count === expected) return; // the server closes now
  }
  if (count === 0 && expected > 0) {
    throw new LessonError("the server closed the connection before answering");
  }
  if (count < expected) throw new LessonError(`the server answered ${count} of ${expected} lines`);
}

async function readStdinLines(): Promise<string[]> {
  if (Deno.stdin.isTerminal()) {
    console.error("type lines, then Ctrl-D (Ctrl-Z Enter on Windows) to send them");
  }
  const bytes = await new Response(Deno.stdin.readable).bytes();
  if (bytes.length > MAX_INPUT_BYTES) {
    throw new LessonError(`standard input is larger than the limit of ${MAX_INPUT_BYTES} bytes`);
  }
  const text = utf8Decode(bytes, "standard input").replace(/\r?\n$/, "");
  return text === "" ? [] : text.split(/\r?\n/);
}
