/**
 * Lesson 10 server: lesson 08's echo server on every core.
 *
 * Lesson 08 served thousands of clients on one thread, one event loop. That
 * loop runs on one core; on a machine with more cores, the others sit idle.
 * This server starts `--workers N` Deno Workers (default: one per core). Each
 * worker is a thread with its own event loop running lesson 08's
 * `echoServer`, and each listens on the same port with `reusePort: true`
 * (SO_REUSEPORT). The kernel spreads new connections over their sockets, by
 * a hash of each connection's addresses and ports; a connection then stays
 * with its worker until it closes.
 *
 * This main thread does no echoing. It parses the flags (lesson 08's, plus
 * `--workers` and `--work`), starts the workers one after the other, prints
 * `listening on HOST:PORT` once all of them listen, and on Ctrl-C or SIGTERM
 * tells them to stop and prints what each one served.
 *
 * `--port 0` needs care: each worker would get a different free port. So the
 * first worker binds port 0, tells us the port the system picked, and the
 * others bind that one.
 *
 * SO_REUSEPORT spreading connections like this is Linux behaviour; on other
 * systems the server runs one worker and says why.
 */
import {
  LessonError,
  listenError,
  parseFlags,
  plural,
  runMain,
  shutdownRequested,
} from "../../lib/mod.ts";
import { type EchoSummary, SERVER_FLAGS, summaryLine } from "../08-many-clients/server.ts";

/** Where and how a worker serves. */
export interface StartOptions {
  host: string;
  port: number;
  maxConnections: number;
  idleSeconds: number;
  quiet: boolean;
  workMicroseconds: number;
}

/** What the main thread tells a worker. */
export type ToWorker =
  | { type: "start"; options: StartOptions }
  | { type: "stop" }
  | { type: "hurry" };

/** What a worker tells the main thread. */
export type FromWorker =
  | { type: "listening"; port: number }
  | { type: "failed"; message: string }
  | ({ type: "stopped" } & EchoSummary);

const LESSON = 10;

await runMain(async () => {
  const cores = navigator.hardwareConcurrency;
  const flags = parseFlags(Deno.args, {
    lesson: LESSON,
    role: "server",
    summary: "Echoes every byte back to each client, on several threads (Deno Workers) " +
      "that all listen on the same port.",
    flags: {
      ...SERVER_FLAGS,
      workers: {
        type: "number",
        description: `how many worker threads to start (default: one per core, ${cores} here)`,
        min: 1,
        max: 256,
        value: "N",
      },
      work: {
        type: "number",
        description: "compute (hash) for about this long before echoing each chunk, " +
          "like a handler that needs the CPU",
        default: 0,
        max: 1_000_000,
        value: "MICROSECONDS",
      },
    },
    epilog: "Example: deno task lesson10-server --workers 2 --work 200",
  });
  let count = flags.workers ?? cores;
  let note = "";
  if (Deno.build.os !== "linux" && count > 1) {
    // Deno ignores reusePort outside Linux, so a second worker could not
    // listen. (macOS and the BSDs would not balance connections anyway.)
    note = `(only Linux spreads connections over sockets that share a port: ` +
      `running 1 worker on ${Deno.build.os}, see the README)`;
    count = 1;
  }

  // reusePort has a catch: any program of the same user that sets it can
  // share the port (and get some of the connections) instead of failing
  // with "address in use", a second copy of this server included. So first
  // check that nobody holds the port, with a plain listen.
  if (flags.port !== 0) {
    try {
      Deno.listen({ hostname: flags.host, port: flags.port }).close();
    } catch (error) {
      throw listenError(error, flags.host, flags.port);
    }
  }

  // Catch Ctrl-C from now on, before any connection can take the last file
  // descriptor (lib/signals.ts: Deno's signal setup needs one).
  const shutdown = shutdownRequested();

  // Start the workers one at a time: the first one may pick the port.
  const workers: Worker[] = [];
  const options: StartOptions = {
    host: flags.host,
    port: flags.port,
    // The limit is for the whole server: each worker gets its share.
    maxConnections: Math.ceil(flags["max-connections"] / count),
    idleSeconds: flags["idle-timeout"],
    quiet: flags.quiet,
    workMicroseconds: flags.work,
  };
  try {
    for (let id = 1; id <= count; id++) {
      const worker = new Worker(new URL("./worker.ts", import.meta.url), {
        type: "module",
        name: `worker ${id}`,
      });
      workers.push(worker);
      const reply = await request(worker, { type: "start", options });
      if (reply.type === "failed") throw new LessonError(reply.message);
      if (reply.type === "listening") options.port = reply.port;
    }
  } catch (error) {
    for (const worker of workers) worker.terminate();
    throw error;
  }
  const host = flags.host.includes(":") ? `[${flags.host}]` : flags.host;
  console.log(`listening on ${host}:${options.port}`);
  console.log(`${plural(count, "worker")} sharing the port, each with its own event loop`);
  if (note) console.log(note);

  // Wait for Ctrl-C (SIGINT) or SIGTERM. A second Ctrl-C tells the workers to hurry.
  const { hurry } = await shutdown;
  hurry.addEventListener("abort", () => {
    for (const worker of workers) worker.postMessage({ type: "hurry" } satisfies ToWorker);
  });

  // Graceful shutdown: every worker stops accepting, lets busy connections
  // finish (for up to a second) and reports. They stop at the same time.
  const replies = await Promise.all(workers.map((worker) => request(worker, { type: "stop" })));
  const reports = replies.filter((r) => r.type === "stopped");
  const total: EchoSummary = {
    open: 0,
    served: 0,
    turnedAway: 0,
    idleClosed: 0,
    cutOff: 0,
    bytes: 0,
  };
  for (const report of reports) {
    for (const key of Object.keys(total) as (keyof EchoSummary)[]) total[key] += report[key];
  }
  console.log(`shutting down: ${plural(total.open, "connection")} open`);
  for (const [i, report] of reports.entries()) {
    console.log(`worker ${i + 1} served ${plural(report.served, "connection")}`);
  }
  for (const worker of workers) worker.terminate();
  console.log(summaryLine(total));
  Deno.exit(0); // the signal listeners would keep the process alive
});

/** Sends a message to a worker and waits for its answer (or its crash). */
function request(worker: Worker, message: ToWorker): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      worker.onerror = null; // from now on a crash in the worker crashes the server
      resolve(event.data);
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      const reason = event.message.split("\n")[0].replace(
        /^Uncaught (\(in worker "[^"]*"\) )?/,
        "",
      );
      reject(new LessonError(`a worker failed: ${reason}`));
    };
    worker.postMessage(message);
  });
}
