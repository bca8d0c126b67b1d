/**
 * Lesson 15 server: lesson 05's line service, which can fail on purpose.
 *
 * Each line is answered with lesson 05's `answer` (its number and the text
 * reversed), with two additions for this lesson:
 *
 * - A line `@ID TEXT` carries a request id. The server remembers the answer
 *   to each id, so a client that retries a request it got no answer to gets
 *   the same answer again and the request is not applied twice. The number
 *   counts the requests applied by the whole server, so a double is visible.
 * - `/ping` is answered `pong` at once: a heartbeat, not a request.
 *
 * `--misbehave MODE` makes it fail in one of the ways real servers fail:
 * `silent` never answers, `reset` resets the connection (RST), `close-early`
 * closes cleanly (FIN) before answering, `slow` answers after `--delay`,
 * `flaky` drops the connection instead of a share (`--drop`) of
 * its answers, and `no-accept` never
 * accepts, so connections pile up in a full queue and time out.
 */
import net from "node:net";
import { answer, SERVER_FLAGS } from "../05-line-framing/server.ts";
// Lesson 14's seeded random numbers (mulberry32): the same --seed, the same run.
import { seededRandom } from "../14-udp/protocol.ts";
import {
  closeQuietly,
  describeNetError,
  formatAddr,
  LessonError,
  listen,
  listenError,
  parseFlags,
  peerLog,
  plural,
  readChunks,
  readLines,
  runMain,
  serveEach,
  UsageError,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";

/** The ways this server can fail on purpose. */
export const MODES = ["none", "silent", "reset", "close-early", "slow", "flaky", "no-accept"];

/**
 * How many answers the server remembers for retried requests, and how many
 * characters of them at most (a line may be 64 KiB): the oldest are forgotten.
 */
const REMEMBERED_IDS = 10_000;
const REMEMBERED_CHARS = 4 * 1024 * 1024;

/** A request id: `@`, then 1 to 40 letters, digits, `_` or `-`, then a space. */
const REQUEST = /^@([\w-]{1,40}) (.*)$/s;

// Lesson 05's flags, without --naive (framing is not this lesson's topic).
const { naive: _naive, ...LINE_FLAGS } = SERVER_FLAGS;

async function main() {
  const flags = parseFlags(Deno.args, {
    lesson: 15,
    role: "server",
    summary: "Lesson 05's line service (@ID TEXT requests are applied once, /ping gets pong) " +
      "that fails on purpose with --misbehave.",
    flags: {
      misbehave: {
        type: "string",
        description: `fail on purpose: ${MODES.join(", ")}`,
        default: "none",
        value: "MODE",
      },
      delay: {
        type: "number",
        description: "with slow: seconds before each answer",
        default: 2,
        integer: false,
        max: 3600,
        value: "SECONDS",
      },
      drop: {
        type: "number",
        description: "with flaky: the share of requests dropped, 0 to 1",
        default: 0.3,
        integer: false,
        max: 1,
        value: "SHARE",
      },
      seed: { type: "number", description: "with flaky: repeatable random choices", value: "N" },
      ...LINE_FLAGS,
    },
  });
  const mode = flags.misbehave;
  if (!MODES.includes(mode)) {
    throw new UsageError(`--misbehave must be one of ${MODES.join(", ")}, got "${mode}"`);
  }
  const options = {
    mode,
    delayMs: flags.delay * 1000,
    drop: flags.drop,
    random: flags.seed === undefined ? Math.random : seededRandom(flags.seed),
    maxLineBytes: flags["max-line"],
    idleTimeoutMs: flags["idle-timeout"] * 1000,
    what: "the client",
  };
  if (mode === "reset") {
    return await serveResets(
      flags.host,
      flags.port,
      options.idleTimeoutMs,
      flags["max-connections"],
    );
  }
  if (mode === "no-accept") return await neverAccept(flags.host, flags.port);
  const listener = listen({ host: flags.host, port: flags.port, lesson: 15 });
  const ledger = new Ledger(REMEMBERED_IDS, REMEMBERED_CHARS);
  await serveEach(listener, (conn) => serve(conn, ledger, options), {
    maxConnections: flags["max-connections"],
    busyReply: utf8Encode("error: server busy\n"),
  });
}

/**
 * Applies requests once. The answer to each id is kept (at most `maxIds`
 * answers and `maxChars` characters of them, the oldest forgotten first), so
 * a retry gets the first answer back.
 *
 * @example
 * ```ts ignore
 * const ledger = new Ledger(100, 100_000);
 * ledger.apply("@a-1 Hello"); // { reply: "@a-1 1: olleH", retry: false }
 * ledger.apply("@a-1 Hello"); // { reply: "@a-1 1: olleH", retry: true }
 * ledger.apply("Hello"); // { reply: "2: olleH", retry: false }: no id, applied again
 * ```
 */
export class Ledger {
  /** How many requests have been applied. */
  applied = 0;
  #answers = new Map<string, string>();
  #chars = 0;
  #maxIds: number;
  #maxChars: number;

  /**
   * @param maxIds how many answers to remember
   * @param maxChars how many characters of answers to remember
   */
  constructor(maxIds: number, maxChars: number) {
    this.#maxIds = maxIds;
    this.#maxChars = maxChars;
  }

  /** The reply to one request line, and whether it is a retry answered from memory. */
  apply(line: string): { reply: string; retry: boolean } {
    const request = line.match(REQUEST);
    if (!request) return { reply: answer(++this.applied, line), retry: false };
    const [, id, text] = request;
    const known = this.#answers.get(id);
    if (known !== undefined) return { reply: known, retry: true };
    const reply = `@${id} ${answer(++this.applied, text)}`;
    this.#answers.set(id, reply);
    this.#chars += reply.length;
    // A Map keeps insertion order: its first entry is the oldest.
    for (const [oldest, old] of this.#answers) {
      if (this.#answers.size <= this.#maxIds && this.#chars <= this.#maxChars) break;
      this.#answers.delete(oldest);
      this.#chars -= old.length;
    }
    return { reply, retry: false };
  }
}

interface Options {
  mode: string;
  delayMs: number;
  drop: number;
  random: () => number;
  maxLineBytes: number;
  idleTimeoutMs: number;
  what: string;
}

async function serve(conn: Deno.TcpConn, ledger: Ledger, options: Options) {
  const peer = formatAddr(conn.remoteAddr);
  peerLog.event(`connection from ${peer}`);
  let count = 0;
  const send = (line: string) =>
    writeAllWithTimeout(conn, utf8Encode(line + "\n"), options.idleTimeoutMs, options.what);
  try {
    if (options.mode === "close-early") {
      // Take what has arrived, so nothing is left unread, then close: a
      // clean FIN. Anything the client writes after this is answered by RST.
      for await (const _chunk of readChunks(conn, options)) break;
      peerLog.event(`closing the connection from ${peer} before answering (FIN)`);
      return;
    }
    for await (const line of readLines(conn, options)) {
      if (options.mode === "silent") continue; // read everything, answer nothing
      if (line === "/ping") {
        await send("pong");
        continue;
      }
      if (line === "/bye") {
        await send("bye");
        break;
      }
      const { reply, retry } = ledger.apply(line);
      if (retry) peerLog.event("a retried request: answered from memory, not applied again");
      if (options.mode === "flaky" && options.random() < options.drop) {
        // The request was applied, but its answer never leaves: the case
        // that request ids are for.
        peerLog.event(`dropping the connection from ${peer} before the answer (FIN)`);
        return;
      }
      // The work is slow, remembering an answer is not: retries come at once.
      if (options.mode === "slow" && !retry) await sleep(options.delayMs);
      await send(reply);
      count++;
    }
    peerLog.event(`closed connection from ${peer} after ${plural(count, "answer")}`);
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    // A line over the limit (or not UTF-8), as in lesson 05: say so and hang up.
    if (error instanceof LessonError) await send(`error: ${reason}`).catch(() => {});
    peerLog.event(`closed connection from ${peer} after ${plural(count, "answer")}: ${reason}`);
  } finally {
    closeQuietly(conn);
  }
}

/**
 * `--misbehave reset`: reset each connection once its first bytes arrive.
 * Deno's `conn.close()` always sends FIN first (it shuts the socket down
 * before closing it), so the peer reads a clean end of stream even when
 * unread data makes Linux add an RST. node:net's `resetAndDestroy()` sets
 * SO_LINGER to 0 and closes: the kernel sends only an RST, as a crashed or
 * overloaded server does, and the client's read fails with ECONNRESET.
 */
async function serveResets(
  host: string,
  port: number,
  idleTimeoutMs: number,
  maxConnections: number,
) {
  const server = net.createServer((socket) => {
    const peer = formatAddr({
      transport: "tcp",
      hostname: socket.remoteAddress ?? "?",
      port: socket.remotePort ?? 0,
    });
    peerLog.event(`connection from ${peer}`);
    socket.setTimeout(idleTimeoutMs, () => socket.destroy());
    socket.on("error", () => {}); // one client's trouble is not the server's
    socket.once("data", () => {
      peerLog.event(`resetting the connection from ${peer} (RST, no FIN)`);
      socket.resetAndDestroy();
    });
  });
  server.maxConnections = maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once(
      "error",
      (error: Error & { code?: string }) => reject(listenError(denoError(error), host, port)),
    );
    server.listen(port, host, resolve);
  });
  const address = server.address() as net.AddressInfo;
  console.log(
    `listening on ${formatAddr({ transport: "tcp", hostname: host, port: address.port })}`,
  );
  await new Promise((resolve) => server.on("close", resolve));
}

/** The Deno error class for a node:net listen error, so lib's listenError can word it. */
function denoError(error: Error & { code?: string }): Error {
  if (error.code === "EADDRINUSE") return new Deno.errors.AddrInUse(error.message);
  if (error.code === "EACCES") return new Deno.errors.PermissionDenied(error.message);
  if (error.code === "EADDRNOTAVAIL") return new Deno.errors.AddrNotAvailable(error.message);
  return error;
}

/**
 * `--misbehave no-accept`: listen with a queue of one and never accept.
 * The kernel completes handshakes on its own until the accept queue is full
 * (Linux holds backlog + 1); we fill it ourselves, so after that every SYN
 * is dropped and a client's connect waits in SYN-SENT until it gives up.
 */
async function neverAccept(host: string, port: number) {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: host, port, tcpBacklog: 1 });
  } catch (error) {
    throw listenError(error, host, port);
  }
  const addr = listener.addr;
  console.log(`listening on ${formatAddr(addr)}`);
  const queued: Deno.TcpConn[] = [];
  while (queued.length < 8) {
    try {
      const signal = AbortSignal.timeout(300);
      queued.push(await Deno.connect({ hostname: addr.hostname, port: addr.port, signal }));
    } catch {
      break; // no answer: the queue is full
    }
  }
  console.log(`never accepting: the queue is full with ${plural(queued.length, "connection")}`);
  // Wait on them for ever; nothing will arrive (this also keeps the process alive).
  await Promise.all(queued.map((conn) => conn.read(new Uint8Array(1)).catch(() => null)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Last, so that the classes above exist when main runs.
if (import.meta.main) await runMain(main);
