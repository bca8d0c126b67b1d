/**
 * Lesson 19 server: a tracing proxy.
 *
 * It listens like any server, and for each client that connects it opens a
 * second connection, to the real server (`--to HOST:PORT`), and relays
 * bytes both ways at once, printing each chunk as a hex dump on the way.
 * Each direction is one loop: read a chunk, print it, write it all to the
 * other side, read the next. That loop is the whole proxy; everything else
 * is what happens at the edges:
 *
 * - EOF (a FIN) from one side becomes `closeWrite()` on the other: the
 *   half-close of lesson 02, passed on. The other direction carries on.
 * - A reset or an error on one side closes both at once.
 * - Backpressure comes for free: the loop does not read again until the
 *   write has finished, so a slow receiver slows the sender down, and the
 *   proxy never holds more than one chunk per direction.
 * - Both directions of every connection read in turns (lib/turns.ts, as
 *   lesson 08): with 1,000 busy connections, plain reads served some of them
 *   hundreds of times while others waited (README, "Going deeper").
 *
 * `--split N` and `--delay MS` re-chunk and slow down what it forwards (a
 * hostile network on demand); `--rewrite FROM=TO` changes bytes in every
 * line, the man in the middle that TLS (lesson 18) defeats.
 */
import { concat } from "@std/bytes";
import {
  closeQuietly,
  describeNetError,
  formatAddr,
  hexdump,
  idleTimeoutFlag,
  IdleTracker,
  listen,
  maxConnectionsFlag,
  parseFlags,
  parseHostPort,
  peerLog,
  plural,
  runMain,
  serveEach,
  UsageError,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import { ReadTurns } from "../../lib/turns.ts";

/** How much one read may bring: the most the proxy holds per direction (without --rewrite). */
const CHUNK_BYTES = 64 * 1024;
/** With --rewrite, the longest line it collects; a longer one is passed on unchanged. */
export const MAX_REWRITE_LINE = 64 * 1024;
/** How long to wait for the real server to accept. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The proxy's flags (exported for bench/fairness/proxy_plain.ts). */
export const PROXY_FLAGS = {
  to: {
    type: "string",
    description: "the real server to relay to",
    default: "127.0.0.1:65405",
    value: "HOST:PORT",
  },
  quiet: { type: "boolean", description: "no hex dumps: only each connection's summary" },
  split: {
    type: "number",
    description: "forward in pieces of at most N bytes",
    min: 1,
    value: "N",
  },
  delay: {
    type: "number",
    description: "wait this long before forwarding each piece",
    default: 0,
    max: 10_000,
    value: "MS",
  },
  rewrite: {
    type: "list",
    description: "replace FROM with TO in every line, both ways",
    value: "FROM=TO",
  },
  "max-dump": {
    type: "number",
    description: "show at most this many bytes of each chunk",
    default: 256,
    value: "BYTES",
  },
  "idle-timeout": idleTimeoutFlag(300),
  "max-connections": maxConnectionsFlag(250),
} as const;

/** The proxy's settings, from the flags. */
export interface ProxyOptions {
  /** The real server. */
  upstream: { hostname: string; port: number };
  /** Print only each connection's summary. */
  quiet: boolean;
  /** Forward in pieces of at most this many bytes. */
  split?: number;
  /** Wait this long before forwarding each piece. */
  delayMs: number;
  /** FROM and TO bytes for --rewrite. */
  rewrites: [Uint8Array, Uint8Array][];
  /** Show at most this many bytes of each chunk. */
  maxDump: number;
  /** Close a connection that carries nothing, either way, for this long. */
  idleTimeoutMs: number;
  /**
   * Reads in turns (lib/turns.ts), one `ReadTurns` for both directions of
   * every connection, so that 1,000 busy connections are served fairly.
   * Without it, plain `conn.read` (what bench/fairness.ts's `lesson19-plain` measures).
   */
  turns?: ReadTurns;
}

/** `"bob=mallory"` → the bytes of `bob` and of `mallory`. */
export function parseRewrite(text: string): [Uint8Array, Uint8Array] {
  const at = text.indexOf("=");
  if (at <= 0) {
    throw new UsageError(
      `--rewrite must be FROM=TO with a FROM that is not empty, got ${JSON.stringify(text)}`,
    );
  }
  return [utf8Encode(text.slice(0, at)), utf8Encode(text.slice(at + 1))];
}

/**
 * Every `from` in `bytes` replaced by `to` (the same bytes back if there is none).
 *
 * @example
 * ```ts
 * import { replaceBytes } from "./server.ts";
 * const e = new TextEncoder();
 * new TextDecoder().decode(replaceBytes(e.encode("pay bob"), e.encode("bob"), e.encode("eve")));
 * // "pay eve"
 * ```
 */
export function replaceBytes(bytes: Uint8Array, from: Uint8Array, to: Uint8Array): Uint8Array {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (let i = bytes.indexOf(from[0]); i !== -1 && i + from.length <= bytes.length;) {
    if (from.every((b, k) => bytes[i + k] === b)) {
      pieces.push(bytes.subarray(start, i), to);
      start = i += from.length;
    } else {
      i++;
    }
    i = bytes.indexOf(from[0], i);
  }
  if (start === 0) return bytes;
  pieces.push(bytes.subarray(start));
  return concat(pieces);
}

/**
 * Collects bytes into lines and rewrites each complete line. Rewriting each
 * chunk as it comes would miss a `FROM` that a read cut in two (`bo` + `b`):
 * the framing bug of lesson 05, in a proxy. So it frames first. A line
 * longer than {@linkcode MAX_REWRITE_LINE} is passed on as it is, so memory
 * stays bounded.
 *
 * Only text is rewritten. Once a chunk holds a control byte that text lines
 * do not have (a TLS record starts with 0x16 or 0x17, lesson 07's header
 * with 0x12), everything in that direction is passed on unchanged from then
 * on: binary data may never contain an LF to wait for, and changing it would
 * break its length fields anyway.
 *
 * @example
 * ```ts
 * import { LineRewriter } from "./server.ts";
 * const e = new TextEncoder();
 * const rewriter = new LineRewriter([[e.encode("bob"), e.encode("eve")]]);
 * rewriter.push(e.encode("hi bo")); // []: no complete line yet
 * rewriter.push(e.encode("b\n")); // [bytes of "hi eve\n"]
 * ```
 */
export class LineRewriter {
  /** True once binary data was seen: from then on nothing is rewritten. */
  binary = false;
  /** How many lines rewriting has changed so far. */
  changed = 0;
  /** How many bytes rewriting has added so far (negative: removed). */
  grown = 0;
  #rewrites: [Uint8Array, Uint8Array][];
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  /**
   * Creates a rewriter with nothing buffered.
   *
   * @param rewrites pairs of FROM and TO bytes
   */
  constructor(rewrites: [Uint8Array, Uint8Array][]) {
    this.#rewrites = rewrites;
  }

  /** Takes a chunk; returns what can be forwarded now (complete lines, rewritten). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (!this.binary && chunk.some(isControl)) this.binary = true;
    if (this.binary) {
      const pending = this.#pendingBytes > 0 ? [this.#take(false)] : [];
      return [...pending, chunk].filter((bytes) => bytes.length > 0);
    }
    const out: Uint8Array[] = [];
    let start = 0;
    for (let lf = chunk.indexOf(0x0a); lf !== -1; lf = chunk.indexOf(0x0a, start)) {
      this.#keep(chunk.subarray(start, lf + 1));
      out.push(this.#take(true));
      start = lf + 1;
    }
    this.#keep(chunk.subarray(start));
    // No LF for too long: not a line we can rewrite; let it through as it is.
    if (this.#pendingBytes > MAX_REWRITE_LINE) out.push(this.#take(false));
    return out.filter((bytes) => bytes.length > 0);
  }

  /** At EOF: the last, unfinished line (rewritten too: nothing more will come). */
  end(): Uint8Array[] {
    return this.#pendingBytes > 0 ? [this.#take(true)] : [];
  }

  #keep(bytes: Uint8Array) {
    if (bytes.length === 0) return;
    this.#pending.push(bytes.slice()); // a copy: the read buffer is reused
    this.#pendingBytes += bytes.length;
  }

  #take(rewrite: boolean): Uint8Array {
    let line: Uint8Array = concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    const original = line;
    if (rewrite) { for (const [from, to] of this.#rewrites) line = replaceBytes(line, from, to); }
    if (line !== original) {
      this.changed++;
      this.grown += line.length - original.length;
    }
    return line;
  }
}

/** One proxied connection: the two sockets and what went through them. */
interface Session {
  id: number;
  client: Deno.Conn;
  server?: Deno.Conn;
  started: number;
  lastActive: number;
}

/** What one direction did, for the summary. */
interface DirectionStats {
  bytesIn: number;
  bytesOut: number;
  writes: number;
  end: string;
}

/**
 * Accepts clients until the listener is closed and relays each one to the
 * real server, at most `maxConnections` at once (each costs two sockets).
 */
export async function serveProxy(
  listener: Deno.Listener,
  options: ProxyOptions,
  maxConnections: number,
): Promise<void> {
  let count = 0;
  // One timer for all connections: a connection with no bytes either way
  // for --idle-timeout is closed (lesson 08's IdleTracker).
  const idle = new IdleTracker<Session>({
    idleTimeoutMs: options.idleTimeoutMs,
    onIdle: (session) => {
      peerLog.event(
        `#${session.id} nothing either way for ${options.idleTimeoutMs / 1000} s: closing`,
      );
      idle.delete(session);
      closeBoth(session);
    },
  });
  try {
    await serveEach(listener, async (client) => {
      const session: Session = {
        id: ++count,
        client,
        started: performance.now(),
        lastActive: idle.now,
      };
      idle.add(session);
      try {
        await relay(session, options, () => session.lastActive = idle.now);
      } finally {
        idle.delete(session);
        closeBoth(session);
      }
    }, {
      maxConnections,
      busyReply: new Uint8Array(0), // a proxy knows no protocol: just close
    });
  } finally {
    idle.stop();
    options.turns?.stop();
  }
}

function closeBoth(session: Session) {
  closeQuietly(session.client);
  if (session.server) closeQuietly(session.server);
}

/** Connects to the real server, then runs both directions until both have ended. */
async function relay(session: Session, options: ProxyOptions, touch: () => void) {
  const { id, client } = session;
  const peer = formatAddr(client.remoteAddr);
  const target = formatAddr({ transport: "tcp", ...options.upstream });
  try {
    session.server = await Deno.connect({
      ...options.upstream,
      signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
    });
  } catch (error) {
    // Nothing to relay to: close the client's connection (it sees EOF at
    // once, not a hang) and say why in one line.
    const why = describeNetError(error) ?? (error instanceof Error ? error.message : String(error));
    peerLog.event(
      `#${id} ${peer}: could not connect to ${target}: ${why}: closed the client's connection`,
    );
    return;
  }
  if (!options.quiet) peerLog.event(`#${id} ${peer} connected, relaying to ${target}`);
  const server = session.server;
  const [up, down] = await Promise.all([
    pump(session, client, server, "client → server", options, touch),
    pump(session, server, client, "server → client", options, touch),
  ]);
  const ms = (performance.now() - session.started).toFixed(1);
  peerLog.event(`#${id} closed after ${ms} ms`);
  peerLog.event(`#${id}   client → server ${describeStats(up)}`);
  peerLog.event(`#${id}   server → client ${describeStats(down)}`);
}

function describeStats(stats: DirectionStats): string {
  const rewritten = stats.bytesOut === stats.bytesIn ? "" : `, ${stats.bytesOut} after rewriting,`;
  return `${plural(stats.bytesIn, "byte")}${rewritten} in ${plural(stats.writes, "write")}, ` +
    `then ${stats.end}`;
}

/**
 * One direction: read a chunk from `from`, print it, forward it to `to`;
 * repeat until EOF (relayed as closeWrite) or an error (both sides closed).
 */
async function pump(
  session: Session,
  from: Deno.Conn,
  to: Deno.Conn,
  direction: string,
  options: ProxyOptions,
  touch: () => void,
): Promise<DirectionStats> {
  const stats: DirectionStats = { bytesIn: 0, bytesOut: 0, writes: 0, end: "FIN" };
  const buffer = new Uint8Array(CHUNK_BYTES);
  const rewriter = options.rewrites.length > 0 ? new LineRewriter(options.rewrites) : undefined;
  const receiver = direction.endsWith("server") ? "the server" : "the client";
  const note = (text: string) => {
    const ms = (performance.now() - session.started).toFixed(1);
    if (!options.quiet) peerLog.event(`#${session.id} +${ms} ms ${direction} ${text}`);
  };
  /** Writes all of `data` to `to`: in --split pieces, each after --delay. */
  const write = async (data: Uint8Array) => {
    stats.bytesOut += data.length;
    const size = options.split ?? data.length;
    for (let i = 0; i < data.length; i += size) {
      if (options.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
      // All of it before the next read: this await is the backpressure. A
      // receiver that takes nothing for --idle-timeout is given up on.
      await writeAllWithTimeout(to, data.subarray(i, i + size), options.idleTimeoutMs, receiver);
      stats.writes++;
      // A write is activity too: a long --split/--delay forward is not idle.
      touch();
    }
  };
  /** Forwards one chunk: as it is, or with --rewrite the complete lines in it, rewritten. */
  const forward = async (chunk: Uint8Array) => {
    if (!rewriter) return await write(chunk);
    const [changed, grown] = [rewriter.changed, rewriter.grown];
    const lines = rewriter.push(chunk);
    if (rewriter.changed > changed) {
      const count = plural(rewriter.changed - changed, "line");
      note(`rewrote ${count} (${signed(rewriter.grown - grown)} bytes)`);
    }
    for (const line of lines) await write(line);
  };
  /** At EOF: forwards the unfinished line that --rewrite still holds, if any. */
  const flush = async () => {
    for (const data of rewriter?.end() ?? []) await write(data);
  };

  try {
    while (true) {
      let n: number | null;
      try {
        // `turns.read` is `from.read` once it is this read's turn: in a crowd,
        // at most 64 reads, of either direction, wait in Deno at once (lesson 08).
        n = await (options.turns?.read(from, buffer) ?? from.read(buffer));
      } catch (error) {
        if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
        // The sender reset the connection. Deno cannot send a reset on
        // purpose, so the nearest we can do is close both sides at once.
        stats.end = "reset";
        note("RESET: closing both sides");
        closeBoth(session);
        return stats;
      }
      if (n === null) break;
      touch();
      stats.bytesIn += n;
      const chunk = buffer.subarray(0, n);
      note(plural(n, "byte"));
      if (!options.quiet) peerLog.event(dump(chunk, options.maxDump));
      await forward(chunk);
    }
    await flush();
    note("FIN: passing on the half-close");
    // If the receiver has gone already, its own direction will say so.
    await to.closeWrite().catch(() => {});
    return stats;
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error; // a bug: let it show
    // The receiver went away, did not read, or the other direction closed
    // everything: end both.
    stats.end = `cut off: ${reason}`;
    closeBoth(session);
    return stats;
  }
}

/** A byte below space (or DEL) that is not TAB, LF or CR: not in a line of text. */
function isControl(byte: number): boolean {
  return (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) || byte === 0x7f;
}

const signed = (n: number) => (n > 0 ? `+${n}` : String(n));

/** The hex dump of a chunk, at most `maxBytes` of it, indented. */
function dump(chunk: Uint8Array, maxBytes: number): string {
  const shown = hexdump(chunk.subarray(0, maxBytes)).replace(/^/gm, "  ");
  const more = chunk.length - maxBytes;
  return more > 0 ? `${shown}\n  ... ${plural(more, "more byte")}` : shown;
}

// Last, so that the classes above are defined when it runs.
if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 19,
      role: "server",
      summary: "A tracing proxy: relays each client to the real server (--to) and prints " +
        "every chunk, both ways, as a hex dump; --split, --delay and --rewrite meddle with it.",
      flags: PROXY_FLAGS,
      epilog: "Examples:\n  deno task lesson19-server --to 127.0.0.1:65407\n" +
        "  deno task lesson19-server --to 127.0.0.1:65405 --split 1 --delay 20 --quiet\n" +
        '  deno task lesson19-server --to 127.0.0.1:65412 --rewrite "bob=mallory"',
    });
    const options: ProxyOptions = {
      upstream: parseHostPort(flags.to, "--to"),
      quiet: flags.quiet,
      split: flags.split,
      delayMs: flags.delay,
      rewrites: flags.rewrite.map(parseRewrite),
      maxDump: flags["max-dump"],
      idleTimeoutMs: flags["idle-timeout"] * 1000,
      turns: new ReadTurns(), // fair with 1,000 busy connections too
    };
    const listener = listen({ host: flags.host, port: flags.port, lesson: 19 });
    console.log(`relaying to ${formatAddr({ transport: "tcp", ...options.upstream })}`);
    await serveProxy(listener, options, flags["max-connections"]);
  });
}
