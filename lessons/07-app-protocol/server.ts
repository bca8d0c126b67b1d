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
 *
 * Everything a client can make the server keep has a bound: the store's keys
 * and bytes, each reply (a `keys` list is cut to fit the body limit) and each
 * log line (long JSON is shortened).
 */
import {
  closeQuietly,
  DEFAULT_MAX_BODY_BYTES,
  describeNetError,
  encodeMessage,
  formatAddr,
  idleTimeoutFlag,
  listen,
  maxConnectionsFlag,
  type Message,
  MessageType,
  parseFlags,
  peerLog,
  plural,
  ProtocolError,
  readMessages,
  runMain,
  serveEach,
  utf8Decode,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";

/**
 * The store: one Map for all connections (a Deno program runs one task at a
 * time). A value is kept as its JSON text in UTF-8, not as the parsed value:
 * a parsed `{}` takes dozens of bytes of memory, its text two. `storeBytes`
 * counts the bytes of every key and value, so `--max-store-bytes` really
 * bounds the memory the store takes.
 */
const store = new Map<string, Uint8Array>();
let storeBytes = 0;

/** The bytes an entry counts for: its key and its value's JSON, in UTF-8. */
const entryBytes = (key: string, json: Uint8Array) => utf8Encode(key).length + json.length;

/** The server's limits, from its flags. */
interface Limits {
  maxBodyBytes: number;
  idleTimeoutMs: number;
  maxKeys: number;
  maxStoreBytes: number;
}

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
      "max-store-bytes": {
        type: "number",
        description: "most bytes of keys and values the store holds",
        default: 64 * 1024 * 1024,
        min: 1,
        value: "BYTES",
      },
      "idle-timeout": idleTimeoutFlag(300),
      "max-connections": maxConnectionsFlag(500),
    },
  });
  const limits: Limits = {
    maxBodyBytes: flags["max-body"],
    idleTimeoutMs: flags["idle-timeout"] * 1000,
    maxKeys: flags["max-keys"],
    maxStoreBytes: flags["max-store-bytes"],
  };
  const listener = listen({ host: flags.host, port: flags.port, lesson: 7 });
  // Many clients at once (lesson 08), at most --max-connections of them.
  await serveEach(listener, (conn) => serve(conn, limits), {
    maxConnections: flags["max-connections"],
    // A client over the limit gets an error message of the protocol, then EOF.
    busyReply: encodeMessage(
      MessageType.Error,
      fail("server-busy", "the server is serving as many clients as it can: try again later"),
    ),
  });
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

/** JSON text for the log and for error messages: at most 100 characters, then "…" and its size. */
function shorten(json: string): string {
  if (json.length <= 100) return json;
  return `${json.slice(0, 100)}… (${utf8Encode(json).length} bytes)`;
}

/**
 * The `keys` answer: every key, sorted, unless that would not fit in one
 * message body of `maxBytes` (the limit the server puts on requests, and
 * what a client can expect to read). Then it lists the first keys that fit
 * and says `"truncated":true`.
 */
function listKeys(maxBytes: number): Answer {
  const keys: string[] = [];
  let size = '{"ok":true,"keys":[],"truncated":true}'.length;
  for (const key of [...store.keys()].sort()) {
    size += utf8Encode(JSON.stringify(key)).length + 1; // the key and a comma
    if (size > maxBytes) return { ok: true, keys, truncated: true };
    keys.push(key);
  }
  return { ok: true, keys };
}

/** Carries out one request and returns the answer. */
function handle(message: Message, limits: Limits): Answer {
  if (message.type !== MessageType.Request) {
    return fail("bad-type", `expected a request (type 1), got type ${message.type}`);
  }
  const request = message.body;
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    return fail("bad-request", "the body must be a JSON object");
  }
  const { op, key, value } = request as Record<string, unknown>;
  if (op === "keys") return listKeys(limits.maxBodyBytes);
  if (op !== "set" && op !== "get" && op !== "delete") {
    return fail("unknown-op", `unknown op ${JSON.stringify(op)}: use set, get, delete or keys`);
  }
  if (typeof key !== "string" || key === "") {
    return fail("bad-request", `"${op}" needs a "key": a non-empty string`);
  }
  switch (op) {
    case "set": {
      if (value === undefined) return fail("bad-request", `"set" needs a "value"`);
      const old = store.get(key);
      if (old === undefined && store.size >= limits.maxKeys) {
        return fail("store-full", `the store holds ${limits.maxKeys} keys already`);
      }
      const json = utf8Encode(JSON.stringify(value));
      const grows = entryBytes(key, json) - (old === undefined ? 0 : entryBytes(key, old));
      if (storeBytes + grows > limits.maxStoreBytes) {
        return fail(
          "store-full",
          `the store holds ${storeBytes} of at most ${limits.maxStoreBytes} bytes: ` +
            `no room for ${grows} more`,
        );
      }
      store.set(key, json);
      storeBytes += grows;
      return { ok: true };
    }
    case "get": {
      const json = store.get(key);
      if (json === undefined) {
        return fail("not-found", `no value for key ${shorten(JSON.stringify(key))}`);
      }
      return { ok: true, value: JSON.parse(utf8Decode(json)) };
    }
    case "delete": {
      const old = store.get(key);
      if (old !== undefined) storeBytes -= entryBytes(key, old);
      return { ok: true, deleted: store.delete(key) };
    }
  }
}

async function serve(conn: Deno.TcpConn, limits: Limits) {
  const peer = formatAddr(conn.remoteAddr);
  peerLog.event(`connection from ${peer}`);
  let count = 0;
  // A client that sends requests but never reads the answers is closed once
  // a write has made no progress for the idle timeout.
  const send = (answer: Answer) =>
    writeAllWithTimeout(
      conn,
      encodeMessage(answer.ok ? MessageType.Response : MessageType.Error, answer),
      limits.idleTimeoutMs,
      "the client",
    );
  try {
    // readMessages yields decoded messages, and protocol errors in the order
    // they happened in the stream; after a fatal error it stops.
    for await (const item of readMessages(conn, { ...limits, what: "the client" })) {
      count++;
      if (item instanceof ProtocolError) {
        peerLog.event(`${peer}: ${item.code}: ${item.message}`);
        await send(fail(item.code, item.message));
        if (item.fatal) break; // the stream cannot be trusted any more
        continue;
      }
      const answer = handle(item, limits);
      peerLog.event(
        `${peer}: ${shorten(JSON.stringify(item.body))} -> ${shorten(JSON.stringify(answer))}`,
      );
      await send(answer);
    }
    peerLog.event(`closed connection from ${peer} after ${plural(count, "message")}`);
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    peerLog.event(`closed connection from ${peer}: ${reason}`);
  } finally {
    closeQuietly(conn);
  }
}
