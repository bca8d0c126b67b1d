/**
 * Lesson 07 server: an application protocol.
 *
 * Every message is a 16-byte header (magic, type, body length, CRC-32 of the
 * body; four unsigned 32-bit big-endian numbers) and a UTF-8 JSON body. The
 * server is a small key-value store shared by all connections. The README
 * is the contract: it describes every byte.
 *
 * Errors come back as type-3 messages. Some leave the connection usable (a
 * bad checksum, bad JSON, an unknown op); after a bad magic number or a
 * length over the limit we cannot tell where the next message starts, so the
 * server answers and closes.
 */
import {
  closeQuietly,
  DEFAULT_MAX_BODY_BYTES,
  describeNetError,
  encodeMessage,
  formatAddr,
  idleTimeoutFlag,
  listen,
  type Message,
  MessageType,
  parseFlags,
  plural,
  ProtocolError,
  readMessages,
  runMain,
  writeAll,
} from "../../lib/mod.ts";

/** The store: one Map for all connections (a Deno program runs one task at a time). */
const store = new Map<string, unknown>();

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 7,
    role: "server",
    summary: "A key-value store speaking the lesson 07 protocol (header, CRC-32, JSON body).",
    flags: {
      "max-body": {
        type: "number",
        description: "largest message body accepted, in bytes",
        default: DEFAULT_MAX_BODY_BYTES,
        value: "BYTES",
      },
      "max-keys": {
        type: "number",
        description: "most keys the store holds",
        default: 10_000,
        min: 1,
        value: "N",
      },
      "idle-timeout": idleTimeoutFlag(300),
    },
  });
  const listener = listen({ host: flags.host, port: flags.port, lesson: 7 });
  for await (const conn of listener) {
    serve(conn, {
      maxBodyBytes: flags["max-body"],
      idleTimeoutMs: flags["idle-timeout"] * 1000,
      maxKeys: flags["max-keys"],
    });
  }
});

/** An answer: a response body, or an error code and text. */
type Answer = { ok: true; [field: string]: unknown } | {
  ok: false;
  error: string;
  message: string;
};

function fail(error: string, message: string): Answer {
  return { ok: false, error, message };
}

/** Carries out one request and returns the answer. */
function handle(message: Message, maxKeys: number): Answer {
  if (message.type !== MessageType.Request) {
    return fail("bad-type", `expected a request (type 1), got type ${message.type}`);
  }
  const request = message.body;
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    return fail("bad-request", "the body must be a JSON object");
  }
  const { op, key, value } = request as Record<string, unknown>;
  if (op === "keys") return { ok: true, keys: [...store.keys()].sort() };
  if (op !== "set" && op !== "get" && op !== "delete") {
    return fail("unknown-op", `unknown op ${JSON.stringify(op)}: use set, get, delete or keys`);
  }
  if (typeof key !== "string" || key === "") {
    return fail("bad-request", `"${op}" needs a "key": a non-empty string`);
  }
  switch (op) {
    case "set":
      if (value === undefined) return fail("bad-request", `"set" needs a "value"`);
      if (!store.has(key) && store.size >= maxKeys) {
        return fail("store-full", `the store holds ${maxKeys} keys already`);
      }
      store.set(key, value);
      return { ok: true };
    case "get":
      if (!store.has(key)) return fail("not-found", `no value for key ${JSON.stringify(key)}`);
      return { ok: true, value: store.get(key) };
    case "delete":
      return { ok: true, deleted: store.delete(key) };
  }
}

async function serve(
  conn: Deno.TcpConn,
  options: { maxBodyBytes: number; idleTimeoutMs: number; maxKeys: number },
) {
  const peer = formatAddr(conn.remoteAddr);
  console.log(`connection from ${peer}`);
  let count = 0;
  const send = (answer: Answer) =>
    writeAll(conn, encodeMessage(answer.ok ? MessageType.Response : MessageType.Error, answer));
  try {
    // readMessages yields decoded messages, and protocol errors in the order
    // they happened in the stream; after a fatal error it stops.
    for await (const item of readMessages(conn, { ...options, what: "the client" })) {
      count++;
      if (item instanceof ProtocolError) {
        console.log(`${peer}: ${item.code}: ${item.message}`);
        await send(fail(item.code, item.message));
        if (item.fatal) break; // the stream cannot be trusted any more
        continue;
      }
      const answer = handle(item, options.maxKeys);
      console.log(`${peer}: ${JSON.stringify(item.body)} -> ${JSON.stringify(answer)}`);
      await send(answer);
    }
    console.log(`closed connection from ${peer} after ${plural(count, "message")}`);
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    console.log(`closed connection from ${peer}: ${reason}`);
  } finally {
    closeQuietly(conn);
  }
}
