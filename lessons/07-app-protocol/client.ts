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
  terminalSafe,
  timeoutFlag,
  UsageError,
  withDeadline,
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
      timeout: timeoutFlag(10),
    },
    epilog: "Examples:\n  deno task lesson07-client set color blue\n" +
      "  deno task lesson07-client get color\n  deno task lesson07-client --trace keys",
  });
  const request = parseCommand(flags.positionals);

  using conn = await connect({ host: flags.host, port: flags.port, lesson: 7 });
  const timeoutMs = flags.timeout * 1000;
  const bytes = encodeMessage(MessageType.Request, request);
  if (flags.trace) trace("sent", bytes);

  // One response is all we want, within one deadline for the whole exchange
  // (see lesson 02); its body is small, so the default 1 MiB limit is plenty.
  const reply = await withDeadline(conn, timeoutMs, "the response", async () => {
    await writeAll(conn, bytes);
    const responses = readMessages(conn, { idleTimeoutMs: timeoutMs, what: "the response" });
    const { value, done } = await responses.next();
    if (done) throw new LessonError("the server closed the connection before answering");
    if (value instanceof ProtocolError) {
      throw new LessonError(`the server's answer is broken: ${value.message}`);
    }
    return value;
  });
  if (flags.trace) trace("received", reply.bytes);
  show(request.op, reply);
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

/**
 * Checks that a response has the shape the wire format promises for `op`, and
 * prints its body; an error message becomes a one-line error, exit 1. A
 * server that answers anything else (`[1,2]`, a response without its field)
 * is not trusted: that is an error too.
 */
function show(op: unknown, reply: Message) {
  const body = reply.body as Record<string, unknown>;
  const isObject = typeof body === "object" && body !== null && !Array.isArray(body);
  if (
    reply.type === MessageType.Error && isObject && body.ok === false &&
    typeof body.error === "string" && typeof body.message === "string"
  ) {
    throw new LessonError(`error ${oneLine(body.error)}: ${oneLine(body.message)}`);
  }
  const fits = reply.type === MessageType.Response && isObject && body.ok === true && (
    op === "set" ||
    (op === "get" && "value" in body) ||
    (op === "delete" && typeof body.deleted === "boolean") ||
    (op === "keys" && Array.isArray(body.keys) && body.keys.every((k) => typeof k === "string"))
  );
  if (!fits) {
    const what = `${messageTypeName(reply.type)} ${JSON.stringify(reply.body)}`;
    throw new LessonError(`the server's answer is not a response to "${op}": ${oneLine(what)}`);
  }
  console.log(terminalSafe(JSON.stringify(reply.body)));
}

/** Text from the server, made safe to print as (part of) one short line. */
function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, " ");
  return flat.length > 200 ? flat.slice(0, 200) + "..." : flat;
}

function trace(direction: string, bytes: Uint8Array) {
  const type = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4);
  console.log(`${direction} ${messageTypeName(type)}, ${bytes.length} bytes:`);
  console.log(describeHeader(bytes.subarray(0, 16)));
  console.log(`body    ${terminalSafe(new TextDecoder().decode(bytes.subarray(16)))}`);
  console.log(hexdump(bytes));
}
