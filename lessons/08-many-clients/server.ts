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
 * `--max-connections` turns away clients over the limit, `--idle-timeout`
 * closes connections that have gone quiet (with one timer for the whole
 * server, see lib/connections.ts), and Ctrl-C or SIGTERM shuts down
 * gracefully: stop accepting, let echoes in progress finish (for up to a
 * second), close everything, print a summary.
 *
 * Lesson 09 runs this same server on its own port: it imports `main`.
 */
import {
  closeQuietly,
  describeNetError,
  formatAddr,
  listen,
  parseFlags,
  runMain,
  utf8Encode,
} from "../../lib/mod.ts";
import { IdleTracker } from "../../lib/connections.ts";
import { ThrottledLog } from "../../lib/log.ts";

/**
 * Every connection starts with a small read buffer, and only a connection
 * that fills it (a fast sender) gets a bigger one, doubling up to
 * MAX_BUFFER. An idle connection always has a read waiting, and the read
 * needs its buffer, so the first size is what 10,000 idle clients cost:
 * 4 KiB of buffer, about 11 KiB per connection in all. A fast sender's big
 * buffer means fewer reads and writes per megabyte.
 */
const FIRST_BUFFER = 4 * 1024;
const MAX_BUFFER = 256 * 1024;

/** How long in-flight echoes may take to finish when the server shuts down. */
const SHUTDOWN_GRACE_MS = 1000;

const SERVER_BUSY = utf8Encode("server busy\n");

/** What the server knows about one connected client. */
interface Client {
  conn: Deno.TcpConn;
  peer: string;
  /** The idle tracker's clock when we last read from or wrote to this client. */
  lastActive: number;
  /** True while an echo is being written (shutdown lets it finish). */
  echoing: boolean;
  /** Set when the server closes this connection on purpose (idle, shutdown). */
  closing: string | undefined;
}

/**
 * Runs the echo server; `lesson` sets the default port and the task name in
 * `--help` (lesson 09 runs this same server with 9).
 */
export async function main(lesson: number, args: string[] = Deno.args): Promise<void> {
  await runMain(() => run(lesson, args));
}

async function run(lesson: number, args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    lesson,
    role: "server",
    summary: "Echoes every byte back to each client, serving all clients at once.",
    flags: {
      "max-connections": {
        type: "number",
        description: 'serve at most this many clients at once; more get "server busy"',
        default: 10_000,
        min: 1,
        value: "N",
      },
      "idle-timeout": {
        type: "number",
        description: "close a connection that is quiet for this many seconds",
        default: 300,
        min: 1,
        value: "SECONDS",
      },
      quiet: {
        type: "boolean",
        description: "do not log connections, only the listening line, errors and the summary",
      },
    },
  });
  const maxConnections = flags["max-connections"];
  const idleSeconds = flags["idle-timeout"];
  const listener = listen({ host: flags.host, port: flags.port, lesson });
  /** Set by Ctrl-C or SIGTERM. */
  let stopping = false;
  /** Called when the last connection has closed, during shutdown. */
  let allClosed: (() => void) | undefined;

  // The log prints at most 20 lines a second, so 1,000 clients arriving at
  // once cannot slow the server down (lib/log.ts).
  const log = new ThrottledLog();
  const showCount = () => {
    if (!flags.quiet && !stopping) log.status(`active connections: ${clients.size}`);
  };
  const stats = { served: 0, turnedAway: 0, idleClosed: 0, bytes: 0 };

  // One timer for all connections: every few hundred ms it advances a coarse
  // clock and closes the connections that have been quiet for too long.
  const idleMessage = utf8Encode(`idle for ${idleSeconds} s: closing\n`);
  const clients = new IdleTracker<Client>({
    idleTimeoutMs: idleSeconds * 1000,
    onIdle: (client) => {
      if (client.closing) {
        closeQuietly(client.conn); // the goodbye did not go out within a tick
        return;
      }
      client.closing = "idle";
      stats.idleClosed++;
      if (!flags.quiet) log.event(`closed idle connection from ${client.peer}`);
      // Say why, then hang up. (Closing first would cancel the write.)
      client.conn.write(idleMessage).catch(() => {}).finally(() => closeQuietly(client.conn));
    },
  });

  // Ctrl-C (SIGINT) or SIGTERM: close the listener, which ends the accept loop.
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const onSignal = () => {
    stopping = true;
    closeQuietly(listener);
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);

  /** One client, from accept to close. Runs alongside all the others. */
  async function serve(client: Client): Promise<void> {
    const { conn } = client;
    let buffer = new Uint8Array(FIRST_BUFFER);
    try {
      while (!stopping) {
        // Pauses this client only: while it waits, the event loop runs the others.
        const n = await conn.read(buffer);
        if (n === null) break; // EOF: the client half-closed, and all it sent was echoed
        client.lastActive = clients.now;
        // Echo: write until all n bytes are out (a write may take only part of
        // them). This is writeAll from lib/io.ts, written out: on the hot path
        // it saves one promise per echo.
        client.echoing = true;
        let written = 0;
        while (written < n) written += await conn.write(buffer.subarray(written, n));
        client.echoing = false;
        client.lastActive = clients.now;
        stats.bytes += n;
        // A read that fills the buffer means the client sends fast: read more at a time.
        if (n === buffer.length && buffer.length < MAX_BUFFER) {
          buffer = new Uint8Array(buffer.length * 2);
        }
      }
    } catch (error) {
      // A misbehaving client ends its own connection, never the server.
      const reason = describeNetError(error);
      if (reason === undefined) throw error; // a bug: crash with the stack trace
      if (!client.closing && !flags.quiet) {
        log.event(`connection from ${client.peer} failed: ${reason}`);
      }
    } finally {
      closeQuietly(conn);
      clients.delete(client);
      showCount();
      if (clients.size === 0) allClosed?.();
    }
  }

  // The accept loop. No `await` on serve(): accept the next client at once.
  while (true) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (stopping || error instanceof Deno.errors.BadResource) break;
      // Usually "too many open files": every socket is a file descriptor,
      // and the system limit (`ulimit -n`) was reached. Wait, then go on.
      log.event(`could not accept a connection: ${error instanceof Error ? error.message : error}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    const peer = formatAddr(conn.remoteAddr);
    if (clients.size >= maxConnections) {
      // One short line fits in the new socket's empty send buffer, so this
      // write does not wait for the client.
      stats.turnedAway++;
      if (!flags.quiet) log.event(`turned away ${peer}: server busy`);
      conn.write(SERVER_BUSY).catch(() => {}).finally(() => closeQuietly(conn));
      continue;
    }
    const client: Client = { conn, peer, lastActive: 0, echoing: false, closing: undefined };
    clients.add(client);
    stats.served++;
    showCount();
    serve(client);
  }

  // Graceful shutdown: the listener is closed, no new clients. A client
  // waiting in `read` has nothing in flight: close it now. A client whose
  // echo is being written finishes it, sees `stopping` and closes itself.
  log.flush();
  console.log(`shutting down: ${clients.size} connection${clients.size === 1 ? "" : "s"} open`);
  for (const client of clients) {
    client.closing = "shutdown";
    if (!client.echoing) closeQuietly(client.conn);
  }
  if (clients.size > 0) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => allClosed = resolve),
      new Promise<void>((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)),
    ]);
    clearTimeout(timer);
    // Whoever is still writing after the grace period is cut off.
    for (const client of clients) closeQuietly(client.conn);
  }
  clients.stop();
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  log.flush();
  const extra = [
    stats.turnedAway > 0 ? `${stats.turnedAway} turned away` : "",
    stats.idleClosed > 0 ? `${stats.idleClosed} closed for idling` : "",
  ].filter(Boolean).join(", ");
  console.log(
    `served ${stats.served} connection${stats.served === 1 ? "" : "s"}` +
      (extra ? ` (${extra})` : "") + `, echoed ${stats.bytes} bytes`,
  );
}

if (import.meta.main) await main(8);
