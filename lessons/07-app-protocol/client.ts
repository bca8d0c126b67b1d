/**
 * Lesson 07 client: one request, one response.
 *
 *   deno task lesson07-client set color blue
 *   deno task lesson07-client get color
 *   deno task lesson07-client delete color
 *   deno task lesson07-client keys
 *
 * `--trace` prints every message sent and received as a hex dump, with the
 * header fields labelled, so you can see the protocol's bytes.
 */
import {
  connect,
  describeHeader,
  encodeMessage,
  hexdump,
  LessonError,
  type Message,
  MessageType,
  messageTypeName,
  parseFlags,
  ProtocolError,
  readMessages,
  runMain,
  UsageError,
  writeAll,
} from "../../lib/mod.ts";

const USAGE = "set KEY VALUE | get KEY | delete KEY | keys";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 7,
    role: "client",
    summary: "Sends one request to the lesson 07 key-value server and prints the response.",
    positionals: USAGE,
    flags: {
      trace: { type: "boolean", description: "show every message as a labelled hex dump" },
    },
    epilog: "Examples:\n  deno task lesson07-client set color blue\n" +
      "  deno task lesson07-client get color\n  deno task lesson07-client --trace keys",
  });
  const request = parseCommand(flags.positionals);

  using conn = await connect({ host: flags.host, port: flags.port, lesson: 7 });
  const bytes = encodeMessage(MessageType.Request, request);
  if (flags.trace) trace("sent", bytes);
  await writeAll(conn, bytes);

  // One response is all we want; its body is small, so a 1 MiB limit is plenty.
  const responses = readMessages(conn, { idleTimeoutMs: 10_000, what: "the response" });
  const { value: reply, done } = await responses.next();
  if (done) throw new LessonError("the server closed the connection without answering");
  if (reply instanceof ProtocolError) {
    throw new LessonError(`the server's answer is broken: ${reply.message}`);
  }
  if (flags.trace) trace("received", reply.bytes);
  show(reply);
});

/** Turns `set color blue` into `{"op":"set","key":"color","value":"blue"}`. */
function parseCommand(words: string[]): Record<string, unknown> {
  const [op, key, ...rest] = words;
  const need = (count: number) => {
    if (words.length !== count) throw new UsageError(`usage: ${USAGE} (see --help)`);
  };
  switch (op) {
    case "set":
      if (words.length < 3) need(3);
      return { op, key, value: rest.join(" ") };
    case "get":
    case "delete":
      need(2);
      return { op, key };
    case "keys":
      need(1);
      return { op };
    default:
      throw new UsageError(`usage: ${USAGE} (see --help)`);
  }
}

/** Prints a response body; an error message becomes a one-line error, exit 1. */
function show(reply: Message) {
  const body = (typeof reply.body === "object" && reply.body !== null ? reply.body : {}) as {
    ok?: boolean;
    error?: string;
    message?: string;
  };
  if (reply.type === MessageType.Error || body.ok === false) {
    throw new LessonError(`error ${body.error}: ${body.message}`);
  }
  console.log(JSON.stringify(reply.body));
}

function trace(direction: string, bytes: Uint8Array) {
  const type = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4);
  console.log(`${direction} ${messageTypeName(type)}, ${bytes.length} bytes:`);
  console.log(describeHeader(bytes.subarray(0, 16)));
  console.log(`body    ${new TextDecoder().decode(bytes.subarray(16))}`);
  console.log(hexdump(bytes));
}
