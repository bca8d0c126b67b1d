/**
 * Lesson 08 server: an echo server for many clients at once.
 *
 * Lesson 02 served one client at a time: its accept loop did
 * `await echo(conn)`, so the next client waited in the queue. Here the accept
 * loop calls `serve(client)` WITHOUT `await` and goes straight back to
 * accepting. Each connection is an async function that spends its life paused
 * at `await conn.read(...)`; Deno's event loop resumes whichever one has data.
 * One thread, one event loop, thousands of clients.
 *
 * Serving many clients also means protecting the server from them:
 * `--max-connections` turns away clients over the limit (and the limit goes
 * down by itself if the process runs out of file descriptors),
 * `--idle-timeout` closes connections that have gone quiet or stopped reading
 * (with one timer for the whole server, see lib/connections.ts), and Ctrl-C
 * or SIGTERM shuts down gracefully: stop accepting, close the quiet
 * connections, give the busy ones a second to finish, cut off the rest and
 * say how many.
 *
 * Lesson 09 runs this same server on its own port (it imports `main`), and
 * lesson 10 runs `echoServer` on every core.
 */
import {
  acceptConnections,
  closeQuietly,
  ConnectionLimit,
  describeNetError,
  formatAddr,
  idleTimeoutFlag,
  listen,
  maxConnectionsFlag,
  parseFlags,
  plural,
  runMain,
  shutdownRequested,
  utf8Encode,
} from "../../lib/mod.ts";
import { IdleTracker } from "../../lib/connections.ts";
import { ReadTurns } from "../../lib/turns.ts";
import { ThrottledLog } from "../../lib/log.ts";

/**
 * Every connection has a small read buffer of its own. An idle connection
 * always has a read waiting, and the waiting read holds its buffer, so this
 * size is what 10,000 idle clients cost: 4 KiB of buffer, about 11 KiB per
 * connection in all.
 */
export const SMALL_BUFFER = 4 * 1024;
/** A big read buffer, for fast senders: fewer reads and writes per megabyte. */
export const BIG_BUFFER = 256 * 1024;
/** At most this many big buffers exist (8 MiB), however many clients there are. */
const MAX_BIG_BUFFERS = 32;

/**
 * The big read buffers of one server, lent to connections while they send
 * fast. A connection whose read fills its small buffer borrows one (if one
 * is free); a read that does not fill the big buffer has emptied the socket,
 * so the next read may wait a long time, and the connection gives the big
 * buffer back and waits with its small one. So an idle connection never
 * holds a big buffer, and all of them together never hold more than `max`.
 *
 * @example
 * ```ts ignore
 * const buffers = new ReadBuffers(32);
 * let buffer = small;
 * const n = await conn.read(buffer);
 * buffer = buffers.next(buffer, n, small); // the buffer for the next read
 * ```
 */
export class ReadBuffers {
  #free: Uint8Array[] = [];
  #lent = 0;

  /** @param max the most big buffers there may be */
  constructor(readonly max: number) {}

  /** How many big buffers connections hold now. */
  get lent(): number {
    return this.#lent;
  }

  /** The buffer for the next read, after a read of `got` bytes into `buffer`. */
  next(buffer: Uint8Array, got: number, small: Uint8Array): Uint8Array {
    const full = got === buffer.length;
    if (buffer === small) return full ? this.#borrow() ?? small : small;
    if (full) return buffer; // still sending fast: keep it
    this.giveBack(buffer);
    return small;
  }

  /** Returns a big buffer (when its connection closes, or by `next`). */
  giveBack(buffer: Uint8Array): void {
    this.#lent--;
    this.#free.push(buffer);
  }

  #borrow(): Uint8Array | undefined {
    if (this.#lent >= this.max) return undefined; // all lent out: stay small
    this.#lent++;
    return this.#free.pop() ?? new Uint8Array(BIG_BUFFER);
  }
}

/** How long busy connections may go on when the server shuts down. */
const SHUTDOWN_GRACE_MS = 1000;
/** During shutdown, how often we look for connections that have gone quiet. */
const SHUTDOWN_LOOK_MS = 250;

const SERVER_BUSY = utf8Encode("server busy\n");

/** The flags of this server (lesson 10 has them too). */
export const SERVER_FLAGS = {
  "max-connections": maxConnectionsFlag(10_000),
  "idle-timeout": idleTimeoutFlag(300),
  quiet: {
    type: "boolean",
    description: "do not log connections, only the listening line, errors and the summary",
  },
} as const;

/** How to run {@linkcode echoServer}. */
export interface EchoOptions {
  /** `--max-connections`. */
  maxConnections: number;
  /** `--idle-timeout`, in seconds. */
  idleSeconds: number;
  /** `--quiet`: no line per connection. */
  quiet: boolean;
  /** Where log lines go (default console.log; lesson 10 adds the worker's name). */
  write?: (line: string) => void;
  /** Runs on every chunk read, before it is echoed (lesson 10's `--work`). */
  beforeEcho?: (chunk: Uint8Array) => void;
}

/** What an echo server did, for its summary. */
export interface EchoSummary {
  /** Connections open when the shutdown began. */
  open: number;
  served: number;
  turnedAway: number;
  idleClosed: number;
  /** Connections still busy when the shutdown grace period ended. */
  cutOff: number;
  bytes: number;
}

/** What the server knows about one connected client. */
interface Client {
  conn: Deno.Conn;
  peer: string;
  /** The idle tracker's clock when we last read from or wrote to this client. */
  lastActive: number;
  /** True while we wait in `read` for this client: nothing is in flight. */
  waiting: boolean;
  /** How many chunks we have read (shutdown compares it to see who is busy). */
  reads: number;
  /** Set when the server closes this connection on purpose (idle, shutdown). */
  closing: string | undefined;
}

/** Echoes every connection `listener` accepts until `stop()` is called. */
export function echoServer(
  listener: Deno.Listener<Deno.Conn>,
  options: EchoOptions,
): { stop(announce?: (open: number) => void, hurry?: AbortSignal): Promise<EchoSummary> } {
  const { quiet } = options;
  // The log prints at most 20 lines a second, so 1,000 clients arriving at
  // once cannot slow the server down (lib/log.ts).
  const log = new ThrottledLog({ write: options.write });
  const stats: EchoSummary = {
    open: 0,
    served: 0,
    turnedAway: 0,
    idleClosed: 0,
    cutOff: 0,
    bytes: 0,
  };
  const limit = new ConnectionLimit(options.maxConnections);
  const buffers = new ReadBuffers(MAX_BIG_BUFFERS);
  const turns = new ReadTurns(); // fair with 1,000 busy clients too
  let stopping = false;
  const showCount = () => {
    if (!quiet && !stopping) log.status(`active connections: ${clients.size}`);
  };

  // One timer for all connections: every few hundred ms it advances a coarse
  // clock and closes the connections that have been quiet for too long. A
  // client that stops reading is caught too: our write makes no progress,
  // so `lastActive` stops moving.
  const idleMessage = utf8Encode(`idle for ${options.idleSeconds} s: closing\n`);
  const clients = new IdleTracker<Client>({
    idleTimeoutMs: options.idleSeconds * 1000,
    onIdle: (client) => {
      if (client.closing) {
        closeQuietly(client.conn); // the goodbye did not go out within a tick
        return;
      }
      client.closing = "idle";
      stats.idleClosed++;
      if (!quiet) log.event(`closed idle connection from ${client.peer}`);
      // Say why, then hang up. (Closing first would cancel the write.)
      client.conn.write(idleMessage).catch(() => {}).finally(() => closeQuietly(client.conn));
    },
  });

  /** One client, from accept to close. Runs alongside all the others. */
  async function serve(client: Client): Promise<void> {
    const { conn } = client;
    const small = new Uint8Array(SMALL_BUFFER);
    let buffer: Uint8Array = small;
    try {
      while (true) {
        // Pauses this client only: while it waits, the event loop runs the
        // others. `turns.read` is `conn.read` once it is this client's turn.
        client.waiting = true;
        const n = await turns.read(conn, buffer);
        client.waiting = false;
        if (n === null) break; // EOF: the client half-closed, and all it sent was echoed
        client.reads++;
        client.lastActive = clients.now;
        options.beforeEcho?.(buffer.subarray(0, n));
        // Echo: write until all n bytes are out (a write may take only part of
        // them). Each write that makes progress counts as activity.
        let written = 0;
        while (written < n) {
          written += await conn.write(buffer.subarray(written, n));
          client.lastActive = clients.now;
        }
        stats.bytes += n;
        buffer = buffers.next(buffer, n, small); // big while the client sends fast
      }
    } catch (error) {
      // A misbehaving client ends its own connection, never the server.
      const reason = describeNetError(error);
      if (reason === undefined) throw error; // a bug: crash with the stack trace
      if (!client.closing && !quiet) log.event(`connection from ${client.peer} failed: ${reason}`);
    } finally {
      closeQuietly(conn);
      if (buffer !== small) buffers.giveBack(buffer);
      clients.delete(client);
      limit.close();
      showCount();
    }
  }

  /** The accept loop. No `await` on serve(): accept the next client at once. */
  async function acceptLoop(): Promise<void> {
    // acceptConnections (lib/accept.ts) skips a client that reset before we
    // took it, and waits a few ms when we are out of file descriptors (and
    // then lowers `limit`, so we stay below the system's limit).
    for await (const conn of acceptConnections(listener, { limit, onError: (l) => log.event(l) })) {
      const peer = formatAddr(conn.remoteAddr);
      // acquire() waits a moment for a connection that has just closed to give its place back.
      if (!await limit.acquire()) {
        // One short line fits in the new socket's empty send buffer, so this
        // write does not wait for the client.
        stats.turnedAway++;
        if (!quiet) log.event(`turned away ${peer}: server busy`);
        conn.write(SERVER_BUSY).catch(() => {}).finally(() => closeQuietly(conn));
        continue;
      }
      const client: Client = {
        conn,
        peer,
        lastActive: 0,
        waiting: false,
        reads: 0,
        closing: undefined,
      };
      clients.add(client);
      stats.served++;
      showCount();
      serve(client);
    }
  }
  const accepting = acceptLoop();

  /**
   * Graceful shutdown: no new clients (`announce` is told how many are
   * connected). Every quarter of a second, close the connections that are
   * waiting for their client and have read nothing since the last look:
   * nothing is in flight. The busy ones go on, for up to a second; the ones
   * still open then are cut off, and counted. `hurry` (a second Ctrl-C)
   * cuts the second short.
   */
  async function stop(
    announce?: (open: number) => void,
    hurry?: AbortSignal,
  ): Promise<EchoSummary> {
    stopping = true;
    closeQuietly(listener); // ends the accept loop
    log.flush();
    stats.open = clients.size;
    announce?.(stats.open);
    await accepting;
    const readsAtLastLook = new Map<Client, number>();
    const deadline = performance.now() + SHUTDOWN_GRACE_MS;
    while (clients.size > 0 && performance.now() < deadline && !hurry?.aborted) {
      for (const client of clients) {
        client.closing = "shutdown";
        if (client.waiting && readsAtLastLook.get(client) === client.reads) {
          closeQuietly(client.conn);
        }
        readsAtLastLook.set(client, client.reads);
      }
      await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_LOOK_MS));
    }
    stats.cutOff = clients.size;
    for (const client of clients) closeQuietly(client.conn);
    // Let each serve() see its connection closed and clean up.
    while (clients.size > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    clients.stop();
    turns.stop();
    log.flush();
    return stats;
  }

  return { stop };
}

/** The summary line: `served 3 connections (1 turned away), echoed 22 bytes`. */
export function summaryLine(stats: EchoSummary): string {
  const extra = [
    stats.turnedAway > 0 ? `${stats.turnedAway} turned away` : "",
    stats.idleClosed > 0 ? `${stats.idleClosed} closed for idling` : "",
    stats.cutOff > 0 ? `${stats.cutOff} cut off at shutdown` : "",
  ].filter(Boolean).join(", ");
  return `served ${plural(stats.served, "connection")}` + (extra ? ` (${extra})` : "") +
    `, echoed ${stats.bytes} bytes`;
}

/**
 * Runs the echo server; `lesson` sets the default port and the task name in
 * `--help` (lesson 09 runs this same server with 9).
 */
export async function main(lesson: number, args: string[] = Deno.args): Promise<void> {
  await runMain(async () => {
    const flags = parseFlags(args, {
      lesson,
      role: "server",
      summary: "Echoes every byte back to each client, serving all clients at once.",
      flags: SERVER_FLAGS,
    });
    const listener = listen({ host: flags.host, port: flags.port, lesson });
    const server = echoServer(listener, {
      maxConnections: flags["max-connections"],
      idleSeconds: flags["idle-timeout"],
      quiet: flags.quiet,
    });

    // Wait for Ctrl-C (SIGINT) or SIGTERM, the signal a service manager sends.
    // lib/signals.ts keeps listening after the first one: under `deno task`
    // one Ctrl-C arrives twice, and the copy must not kill us mid-summary.
    const { hurry } = await shutdownRequested();

    const summary = await server.stop((open) => {
      console.log(`shutting down: ${plural(open, "connection")} open`);
    }, hurry);
    console.log(summaryLine(summary));
  });
}

if (import.meta.main) await main(8);
