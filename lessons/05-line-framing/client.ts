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
  LessonError,
  parseFlags,
  readLines,
  runMain,
  utf8Decode,
  utf8Encode,
  writeAll,
} from "../../lib/mod.ts";

/** The most input we read from a pipe. */
const MAX_INPUT_BYTES = 1024 * 1024;
/** How big the --split pieces are, and the pause between them. */
const PIECE_BYTES = 2;
const PAUSE_MS = 20;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 5,
    role: "client",
    summary: "Sends lines to the lesson 05 server and prints each answer line. " +
      "Lines come from --message (repeatable) or standard input.",
    flags: {
      message: { type: "list", description: "a line to send", value: "TEXT" },
      split: { type: "boolean", description: `write each line in ${PIECE_BYTES}-byte pieces` },
      burst: { type: "boolean", description: "write all lines in one single write" },
    },
  });
  if (flags.split && flags.burst) throw new LessonError("choose --split or --burst, not both");
  const lines = flags.message.length > 0 ? flags.message : await readStdinLines();
  for (const line of lines) console.log(`> ${line}`);

  using conn = await connect({ host: flags.host, port: flags.port, lesson: 5 });

  // Read answers while we write: a reply can arrive before we finish sending.
  const reading = (async () => {
    for await (const line of readLines(conn, { idleTimeoutMs: 10_000, what: "the server" })) {
      console.log(`< ${line}`);
    }
  })();

  const bytes = lines.map((line) => utf8Encode(line + "\n"));
  if (flags.burst) {
    // All lines in one write: the server will likely get them in one read.
    await writeAll(conn, concat(bytes));
  } else {
    for (const line of bytes) {
      if (!flags.split) {
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
  await reading;
});

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
