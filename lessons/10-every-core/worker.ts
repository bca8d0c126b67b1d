/**
 * Lesson 10 worker: one echo server on one thread.
 *
 * server.ts starts one of these per core. Each is a Deno Worker: a separate
 * JavaScript thread with its own event loop, sharing nothing with the others.
 * Each opens its own listening socket on the SAME port, with `reusePort: true`
 * (SO_REUSEPORT), and the Linux kernel hands every new connection to one of
 * them. From then on the connection belongs to that worker alone: the echo
 * loop below is lesson 08's, one event loop serving many clients.
 *
 * The worker talks to the main thread with messages (see `ToWorker` and
 * `FromWorker` in server.ts): it is told where to listen and when to stop,
 * and it reports its port, any error, and at the end what it served.
 */
/// <reference lib="deno.worker" />
import { describeNetError } from "../../lib/errors.ts";
import { closeQuietly, listenError } from "../../lib/net.ts";
import type { FromWorker, ToWorker } from "./server.ts";

/** Same sizes as lesson 08: start small, grow for fast senders. */
const FIRST_BUFFER = 4 * 1024;
const MAX_BUFFER = 256 * 1024;

/** How long in-flight echoes may take to finish when the server shuts down. */
const SHUTDOWN_GRACE_MS = 1000;

/** One connected client. */
interface Client {
  conn: Deno.TcpConn;
  /** True while an echo is being written (shutdown lets it finish). */
  echoing: boolean;
}

let listener: Deno.TcpListener | undefined;
let stopping = false;
const clients = new Set<Client>();
const stats = { served: 0, bytes: 0 };
let allClosed: (() => void) | undefined;

function send(message: FromWorker): void {
  self.postMessage(message);
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") start(message.host, message.port);
  else if (message.type === "stop") stop();
};

function start(host: string, port: number): void {
  try {
    // The one new option: reusePort lets several sockets listen on one port.
    // (It is in Deno's unstable net API: run with --unstable-net, or
    // "unstable": ["net"] in deno.json.)
    listener = Deno.listen({ hostname: host, port, reusePort: true });
  } catch (error) {
    send({ type: "failed", message: listenError(error, host, port).message });
    return;
  }
  send({ type: "listening", port: (listener.addr as Deno.NetAddr).port });
  acceptLoop(listener);
}

/** Lesson 08's accept loop: no `await` on serve(), accept the next client at once. */
async function acceptLoop(listener: Deno.TcpListener): Promise<void> {
  while (true) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (stopping || error instanceof Deno.errors.BadResource) break;
      // Usually "too many open files" (`ulimit -n`): wait, then go on.
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    const client: Client = { conn, echoing: false };
    clients.add(client);
    stats.served++;
    serve(client);
  }
}

/** One client, from accept to close: read, write back, repeat until EOF. */
async function serve(client: Client): Promise<void> {
  const { conn } = client;
  let buffer = new Uint8Array(FIRST_BUFFER);
  try {
    while (!stopping) {
      const n = await conn.read(buffer);
      if (n === null) break; // EOF: the client half-closed
      client.echoing = true;
      let written = 0;
      while (written < n) written += await conn.write(buffer.subarray(written, n));
      client.echoing = false;
      stats.bytes += n;
      if (n === buffer.length && buffer.length < MAX_BUFFER) {
        buffer = new Uint8Array(buffer.length * 2);
      }
    }
  } catch (error) {
    if (describeNetError(error) === undefined) throw error; // a bug: crash loudly
  } finally {
    closeQuietly(conn);
    clients.delete(client);
    if (clients.size === 0) allClosed?.();
  }
}

/** Lesson 08's graceful shutdown, then report to the main thread. */
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (listener) closeQuietly(listener); // ends the accept loop
  const open = clients.size;
  for (const client of clients) if (!client.echoing) closeQuietly(client.conn);
  if (clients.size > 0) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => allClosed = resolve),
      new Promise<void>((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)),
    ]);
    clearTimeout(timer);
    for (const client of clients) closeQuietly(client.conn);
  }
  send({ type: "stopped", open, served: stats.served, bytes: stats.bytes });
}
