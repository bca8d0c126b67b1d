/**
 * Lesson 10 worker: lesson 08's echo server on one thread.
 *
 * server.ts starts one of these per core. Each is a Deno Worker: a separate
 * JavaScript thread with its own event loop, sharing nothing with the others.
 * Each opens its own listening socket on the SAME port, with `reusePort: true`
 * (SO_REUSEPORT), and the Linux kernel hands every new connection to one of
 * them. From then on the connection belongs to that worker alone, and
 * lesson 08's `echoServer` serves it, with all of lesson 08's limits.
 *
 * The worker talks to the main thread with messages (see `ToWorker` and
 * `FromWorker` in server.ts): it is told where to listen and when to stop,
 * and it reports its port, any error, and at the end what it served.
 */
/// <reference lib="deno.worker" />
import { listenError } from "../../lib/net.ts";
import { echoServer, type EchoSummary } from "../08-many-clients/server.ts";
import type { FromWorker, StartOptions, ToWorker } from "./server.ts";

let server: { stop(announce?: undefined, hurry?: AbortSignal): Promise<EchoSummary> } | undefined;
/** Aborted when the main thread says "hurry" (a second Ctrl-C). */
const hurry = new AbortController();

function send(message: FromWorker): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") start(message.options);
  else if (message.type === "hurry") hurry.abort();
  else if (message.type === "stop" && server) {
    send({ type: "stopped", ...await server.stop(undefined, hurry.signal) });
  }
};

function start(options: StartOptions): void {
  let listener: Deno.TcpListener;
  try {
    // The one new option: reusePort lets several sockets listen on one port.
    // (It is in Deno's unstable net API: run with --unstable-net, or
    // "unstable": ["net"] in deno.json.)
    listener = Deno.listen({ hostname: options.host, port: options.port, reusePort: true });
  } catch (error) {
    send({ type: "failed", message: listenError(error, options.host, options.port).message });
    return;
  }
  const work = options.workMicroseconds > 0 ? cpuWork(options.workMicroseconds) : undefined;
  server = echoServer(listener, {
    maxConnections: options.maxConnections,
    idleSeconds: options.idleSeconds,
    quiet: options.quiet,
    write: (line) => console.log(`${self.name}: ${line}`),
    beforeEcho: work,
  });
  send({ type: "listening", port: listener.addr.port });
}

/** Keeps V8 from skipping the hashing as unused. */
let sink = 0;

/** `rounds` rounds of 32-bit FNV-1a hashing: plain CPU work. */
function hash(rounds: number, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < rounds; i++) h = Math.imul(h ^ (i & 0xff), 16777619);
  return h;
}

/**
 * `--work`: a function that computes for about `microseconds` on each chunk,
 * standing for a request handler that needs the CPU. It hashes a fixed
 * number of rounds, measured once here: CPU work, so two workers on two
 * cores really do twice as much (a sleep, or a spin on the clock, would not).
 */
function cpuWork(microseconds: number): (chunk: Uint8Array) => void {
  const trial = 1_000_000;
  hash(trial, 0); // let the JIT compile it first
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    sink ^= hash(trial, i);
    best = Math.min(best, performance.now() - start);
  }
  const rounds = Math.max(1, Math.round(trial * microseconds / (best * 1000)));
  return (chunk) => {
    sink ^= hash(rounds, chunk[0]);
  };
}
