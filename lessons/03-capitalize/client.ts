/**
 * Lesson 03 client: send text as UTF-8 bytes, print the reply and count both
 * in bytes and in characters.
 */
import {
  connect,
  countCharacters,
  LessonError,
  parseFlags,
  plural,
  quote,
  readAll,
  runMain,
  timeoutFlag,
  utf8Decode,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";

/** The most text we read from a pipe or accept back from the server. */
const MAX_BYTES = 1024 * 1024;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 3,
    role: "client",
    summary: "Sends text to the capitalize server and prints the reply with byte and " +
      "character counts. The text comes from --message, else a prompt (on a terminal), " +
      "else standard input.",
    flags: {
      message: { type: "string", description: "the text to send", value: "TEXT" },
      timeout: timeoutFlag(10),
    },
  });
  const text = flags.message ?? await readInput();

  const sent = utf8Encode(text);
  const timeoutMs = flags.timeout * 1000;
  using conn = await connect({ host: flags.host, port: flags.port, lesson: 3 });
  // Send and read at the same time: the server answers each chunk as it
  // arrives, so with a long text its replies could fill our receive buffer
  // while we are still writing (lesson 02 explains this trap).
  const sending = async () => {
    await writeAll(conn, sent);
    await conn.closeWrite(); // "that is all": the server replies and closes
  };
  // One deadline for the whole reply (lesson 02 explains why).
  const [received] = await withDeadline(conn, timeoutMs, "the reply", () =>
    Promise.all([
      readAll(conn, { maxBytes: MAX_BYTES, idleTimeoutMs: timeoutMs, what: "the reply" }),
      sending(),
    ]));

  checkReply(utf8Encode(text.toUpperCase()), received);
  const reply = utf8Decode(received, "the reply");
  console.log(`Sent     ${quote(text)} (${describe(text, sent)})`);
  console.log(`Received ${quote(reply)} (${describe(reply, received)})`);
});

function describe(text: string, bytes: Uint8Array): string {
  return `${plural(bytes.length, "byte")}, ${plural(countCharacters(text), "character")}`;
}

/** Throws a one-line error unless the server sent back `expected`. */
function checkReply(expected: Uint8Array, received: Uint8Array) {
  // Is what came back the start of what we expect (or all of it)?
  const start = received.length <= expected.length &&
    received.every((byte, i) => byte === expected[i]);
  if (start && received.length === expected.length) return;
  if (received.length === 0) {
    throw new LessonError("the server closed the connection before answering");
  }
  if (start) {
    throw new LessonError(
      `the reply is short: expected ${expected.length} bytes, got ${received.length}`,
    );
  }
  // Show the start of it only (a confused server could send a whole
  // megabyte), cut between characters, not in the middle of one.
  const characters = [...utf8Decode(received, "the reply")];
  const shown = characters.slice(0, 60).join("") + (characters.length > 60 ? "..." : "");
  throw new LessonError(`the reply is not the text in capitals: got ${quote(shown)}`);
}

/** Asks on a terminal, otherwise reads standard input (e.g. a pipe). */
async function readInput(): Promise<string> {
  if (Deno.stdin.isTerminal()) {
    return prompt("Enter a string:") ?? "";
  }
  const bytes = await new Response(Deno.stdin.readable).bytes();
  if (bytes.length > MAX_BYTES) {
    throw new LessonError(`standard input is larger than the limit of ${MAX_BYTES} bytes`);
  }
  // `echo text | ...` adds a newline; drop one so the counts match the text.
  return utf8Decode(bytes, "standard input").replace(/\r?\n$/, "");
}
