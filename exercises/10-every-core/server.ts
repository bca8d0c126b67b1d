// deno-lint-ignore-file no-unused-vars -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 10: the port check and starting the workers is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 10`:
 * lesson 10's own tests check your file in the lesson's place.
 *
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

  // TODO(exercise): first, the port check (see the TODO further down).

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
  // TODO(exercise): start the workers. Before shutdownRequested() above, check the port:
  // reusePort lets any program of this user that sets it share the port (a second copy of
  // this server too), so unless flags.port is 0, open it once with a plain Deno.listen,
  // without reusePort, and close it at once; if that throws, throw
  // listenError(error, flags.host, flags.port) ("port N is already in use: ...").
  // Here, for each of the `count` workers, one after the other: a new Worker of
  // ./worker.ts (a module, named `worker ${id}`; the README shows how), kept in `workers`; `await request(worker, { type: "start", options })`; a "failed" reply
  // throws a LessonError with its message; a "listening" reply gives the port the next
  // workers must bind (options.port). If anything fails, terminate every worker started
  // so far, then throw the error on.
  // Traps: every worker asking for port 0 (each would get another free port); no check
  // at startup (a second copy of the server would silently take half the connections).
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
