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
  utf8Decode,
  utf8Encode,
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
    flags: { message: { type: "string", description: "the text to send", value: "TEXT" } },
  });
  const text = flags.message ?? await readInput();

  const sent = utf8Encode(text);
  using conn = await connect({ host: flags.host, port: flags.port, lesson: 3 });
  // Send and read at the same time: the server answers each chunk as it
  // arrives, so with a long text its replies could fill our receive buffer
  // while we are still writing (lesson 02 explains this trap).
  const sending = async () => {
    await writeAll(conn, sent);
    await conn.closeWrite(); // "that is all": the server replies and closes
  };
  const [received] = await Promise.all([
    readAll(conn, { maxBytes: MAX_BYTES, idleTimeoutMs: 10_000, what: "the reply" }),
    sending(),
  ]);

  const reply = utf8Decode(received, "the reply");
  console.log(`Sent     ${quote(text)} (${describe(text, sent)})`);
  console.log(`Received ${quote(reply)} (${describe(reply, received)})`);
});

function describe(text: string, bytes: Uint8Array): string {
  return `${plural(bytes.length, "byte")}, ${plural(countCharacters(text), "character")}`;
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
