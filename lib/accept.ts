/**
 * Accepting connections without letting one client stop the server.
 *
 * `for await (const conn of listener)` looks like all a server needs, but
 * `accept` can fail, and when it throws inside that loop the whole server
 * stops. It fails in two quite different ways:
 *
 * - **One connection went wrong.** A client connected and reset the
 *   connection before we accepted it (it timed out, or closed with
 *   `SO_LINGER` 0). Linux reports "not connected" or "connection aborted"
 *   for that one socket. Nothing is wrong with the server: skip it and
 *   accept the next one at once. Waiting here would let a flood of resets
 *   stall every good client behind them.
 * - **The server is out of file descriptors.** Every socket is a file
 *   descriptor, and a process may only have `ulimit -n` of them (often
 *   1,024). Then accept fails with "too many open files" until a
 *   connection closes. Retrying at once would spin, so wait a little (a few
 *   milliseconds, never long enough for a client to notice much), and from
 *   now on turn clients away before the limit is reached again: running a
 *   process right at its descriptor limit is how programs (Deno 2.9
 *   included) crash.
 *
 * {@linkcode acceptConnections} does that sorting; {@linkcode ConnectionLimit}
 * counts open connections and lowers itself when descriptors run out;
 * {@linkcode serveEach} puts them together for the lessons that serve many
 * clients but teach something else (lesson 08 writes its accept loop out).
 *
 * @module
 */

import { ThrottledLog } from "./log.ts";
import { closeQuietly } from "./net.ts";
import { prepareSignals } from "./signals.ts";

/** How many descriptors to keep free once the system has said "too many open files". */
const DESCRIPTOR_RESERVE = 16;

/** The longest wait after "too many open files" before trying again. */
const MAX_BACKOFF_MS = 50;

/**
 * True for errors that mean "the process or system is out of a resource"
 * (file descriptors, buffers, memory): waiting helps, retrying at once does not.
 *
 * @example
 * ```ts
 * import { isOutOfResources } from "./accept.ts";
 * isOutOfResources(new Error("Too many open files (os error 24)")); // true
 * isOutOfResources(new Deno.errors.NotConnected("os error 107")); // false
 * ```
 */
export function isOutOfResources(error: unknown): boolean {
  // EMFILE (24), ENFILE (23), ENOBUFS (105), ENOMEM (12): Deno has no error
  // class for them, only the OS message.
  return error instanceof Error && /\(os error (24|23|105|12)\)/.test(error.message);
}

/**
 * Counts open connections against a maximum, and lowers the maximum when the
 * process runs out of file descriptors (see the module doc).
 *
 * @example
 * ```ts
 * import { ConnectionLimit } from "./accept.ts";
 * const limit = new ConnectionLimit(2);
 * limit.tryOpen(); // true
 * limit.tryOpen(); // true
 * limit.tryOpen(); // false: turn this client away
 * limit.close();
 * limit.tryOpen(); // true
 * ```
 */
export class ConnectionLimit {
  /** The most connections open at once. */
  max: number;
  /** How many are open now. */
  open = 0;
  /** Clients waiting in {@linkcode ConnectionLimit.acquire} for a place. */
  #waiters: ((granted: boolean) => void)[] = [];

  /**
   * Creates a limit with no connection open.
   *
   * @param max the most connections to serve at once
   */
  constructor(max: number) {
    this.max = max;
  }

  /** Takes a place for a new connection; false if the limit is reached. */
  tryOpen(): boolean {
    if (this.open >= this.max) return false;
    this.open++;
    return true;
  }

  /**
   * Takes a place like {@linkcode ConnectionLimit.tryOpen}, but when none is
   * free, waits up to `waitMs` for one. A client that has just closed its
   * connection still holds its place until its handler has read the end of
   * the stream (and, in a proxy, until the server behind has closed too):
   * often a few milliseconds later. Without the wait, the next client would
   * be told "busy" by a place nobody uses any more. A place given back
   * meanwhile goes straight to the client that waits.
   *
   * @example
   * ```ts
   * import { ConnectionLimit } from "./accept.ts";
   * const limit = new ConnectionLimit(1);
   * await limit.acquire(); // true
   * setTimeout(() => limit.close(), 1); // a connection ends a moment later
   * await limit.acquire(); // true: its place was given back in time
   * ```
   *
   * @param waitMs the longest wait for a place (default 10 ms)
   */
  async acquire(waitMs = 10): Promise<boolean> {
    if (this.tryOpen()) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const granted = await new Promise<boolean>((resolve) => {
      this.#waiters.push(resolve);
      timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((waiter) => waiter !== resolve);
        resolve(false);
      }, waitMs);
    });
    clearTimeout(timer);
    return granted;
  }

  /** Gives back the place of a connection that has closed (to a waiting client first). */
  close(): void {
    const waiter = this.#waiters.shift();
    if (waiter && this.open <= this.max) waiter(true); // the place changes hands: `open` stays
    else this.open--;
  }

  /**
   * The system said "too many open files" with `open` connections: keep
   * some descriptors free from now on. Returns a line for the log the first
   * time the limit goes down, or undefined.
   */
  outOfDescriptors(): string | undefined {
    const lowered = Math.max(1, this.open - DESCRIPTOR_RESERVE);
    if (lowered >= this.max) return undefined;
    this.max = lowered;
    return `out of file descriptors with ${this.open} connections open: serving at most ` +
      `${lowered} at once from now on (raise the limit with ulimit -n)`;
  }
}

/** Options for {@linkcode acceptConnections}. */
export interface AcceptOptions {
  /** Lowered when descriptors run out; see {@linkcode ConnectionLimit.outOfDescriptors}. */
  limit?: ConnectionLimit;
  /** Told, in one line, about each accept that failed. Default: say nothing. */
  onError?: (line: string) => void;
}

/**
 * Yields each accepted connection until the listener is closed. A failed
 * accept never ends the loop: a connection that broke before we took it is
 * skipped at once, and "too many open files" waits a few milliseconds (and
 * lowers `limit`).
 *
 * @example
 * ```ts ignore
 * import { acceptConnections } from "./accept.ts";
 * for await (const conn of acceptConnections(listener, { onError: console.log })) {
 *   serve(conn); // no await: serve everyone at once
 * }
 * ```
 */
export async function* acceptConnections<C extends Deno.Conn = Deno.TcpConn>(
  listener: Deno.Listener<C>,
  options: AcceptOptions = {},
): AsyncGenerator<C> {
  // Before the first accept takes a descriptor (see lib/signals.ts): a
  // listener made without lib's `listen` (a Unix socket) is covered too.
  prepareSignals();
  let backoffMs = 0;
  while (true) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (error) {
      // The listener was closed (Ctrl-C, shutdown): the loop is over.
      if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      if (isOutOfResources(error)) {
        const lowered = options.limit?.outOfDescriptors();
        if (lowered) options.onError?.(lowered);
        backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(1, backoffMs * 2));
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
      } else {
        // One client's connection broke before we accepted it: skip it.
        options.onError?.(`could not accept a connection: ${message}`);
      }
      continue;
    }
    backoffMs = 0;
    yield conn;
  }
}

/** Options for {@linkcode serveEach}. */
export interface ServeOptions {
  /** The most clients served at once; more get `busyReply` and are closed. */
  maxConnections: number;
  /** What a client over the limit is told before it is closed (default `server busy\n`). */
  busyReply?: Uint8Array;
  /**
   * Where one-line notes go (turned-away clients, failed accepts), at most 20
   * a second. Default: console.log.
   */
  log?: (line: string) => void;
}

/**
 * Accepts connections until the listener is closed and runs `handle` for
 * each one WITHOUT waiting for it, so every client is served at once
 * (lesson 08 explains how). At most `maxConnections` are open at a time; a
 * client over the limit gets `server busy` and is closed.
 *
 * `handle` must deal with its connection's errors itself (a rejected promise
 * is a bug and crashes the server with its stack trace). Any stream listener
 * works: TCP, or a Unix socket (lesson 17).
 *
 * @example
 * ```ts ignore
 * import { serveEach } from "./accept.ts";
 * await serveEach(listener, async (conn) => {
 *   // talk to this one client, then close it
 * }, { maxConnections: 1000 });
 * ```
 */
export async function serveEach<C extends Deno.Conn = Deno.TcpConn>(
  listener: Deno.Listener<C>,
  handle: (conn: C) => Promise<void>,
  options: ServeOptions,
): Promise<void> {
  // A crowd or a flood of resets makes one note per client: at most 20
  // lines a second of them, so the log cannot become the server's main job.
  const notes = new ThrottledLog({ write: options.log });
  const log = (line: string) => notes.event(line);
  const busy = options.busyReply ?? new TextEncoder().encode("server busy\n");
  const limit = new ConnectionLimit(options.maxConnections);
  for await (const conn of acceptConnections(listener, { limit, onError: log })) {
    if (!await limit.acquire()) {
      log(`turned away a client: ${limit.open} connections open (the limit)`);
      // A short line fits in a new socket's empty send buffer: this does not wait.
      conn.write(busy).catch(() => {}).finally(() => closeQuietly(conn));
      continue;
    }
    handle(conn).finally(() => limit.close());
  }
  notes.flush();
}
