/**
 * Lesson 10 server: lesson 08's echo server on every core.
 *
 * Lesson 08 served thousands of clients on one thread, one event loop. That
 * loop runs on one core; on a machine with more cores, the others sit idle.
 * This server starts `--workers N` Deno Workers (default: one per core). Each
 * worker is a thread with its own event loop, and each listens on the same
 * port with `reusePort: true` (SO_REUSEPORT). The kernel spreads new
 * connections over their sockets, by a hash of each connection's addresses
 * and ports; a connection then stays with its worker until it closes.
 *
 * This main thread does no echoing. It parses the flags, starts the workers
 * one after the other, prints `listening on HOST:PORT` once all of them
 * listen, and on Ctrl-C or SIGTERM tells them to stop and prints what each
 * one served.
 *
 * `--port 0` needs care: each worker would get a different free port. So the
 * first worker binds port 0, tells us the port the system picked, and the
 * others bind that one.
 *
 * SO_REUSEPORT spreading connections like this is Linux behaviour; on other
 * systems the server runs one worker and says why.
 */
import { LessonError, listenError, parseFlags, runMain } from "../../lib/mod.ts";

/** What the main thread tells a worker. */
export type ToWorker =
  | { type: "start"; host: string; port: number }
  | { type: "stop" };

/** What a worker tells the main thread. */
export type FromWorker =
  | { type: "listening"; port: number }
  | { type: "failed"; message: string }
  | { type: "stopped"; open: number; served: number; bytes: number };

const LESSON = 10;

await runMain(async () => {
  const cores = navigator.hardwareConcurrency;
  const flags = parseFlags(Deno.args, {
    lesson: LESSON,
    role: "server",
    summary: "Echoes every byte back to each client, on several threads (Deno Workers) " +
      "that all listen on the same port.",
    flags: {
      workers: {
        type: "number",
        description: `how many worker threads to start (default: one per core, ${cores} here)`,
        min: 1,
        max: 256,
        value: "N",
      },
    },
    epilog: "Example: deno task lesson10-server --workers 2",
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

  // reusePort has a catch: a second copy of this server would happily share
  // the port (and half of the connections) instead of failing with "address
  // in use". So first check that nobody holds the port, with a plain listen.
  if (flags.port !== 0) {
    try {
      Deno.listen({ hostname: flags.host, port: flags.port }).close();
    } catch (error) {
      throw listenError(error, flags.host, flags.port);
    }
  }

  // Start the workers one at a time: the first one may pick the port.
  const workers: Worker[] = [];
  let port = flags.port;
  try {
    for (let id = 1; id <= count; id++) {
      const worker = new Worker(new URL("./worker.ts", import.meta.url), {
        type: "module",
        name: `worker ${id}`,
      });
      workers.push(worker);
      const reply = await request(worker, { type: "start", host: flags.host, port });
      if (reply.type === "failed") throw new LessonError(reply.message);
      if (reply.type === "listening") port = reply.port;
    }
  } catch (error) {
    for (const worker of workers) worker.terminate();
    throw error;
  }
  const host = flags.host.includes(":") ? `[${flags.host}]` : flags.host;
  console.log(`listening on ${host}:${port}`);
  console.log(`${plural(count, "worker")} sharing the port, each with its own event loop`);
  if (note) console.log(note);

  // Wait for Ctrl-C (SIGINT) or SIGTERM.
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  await new Promise<void>((resolve) => {
    for (const signal of signals) Deno.addSignalListener(signal, resolve);
  });

  // Graceful shutdown: every worker stops accepting, lets echoes in progress
  // finish (for up to a second) and reports. They stop at the same time.
  const reports = await Promise.all(workers.map((worker) => request(worker, { type: "stop" })));
  const open = reports.reduce((sum, r) => sum + (r.type === "stopped" ? r.open : 0), 0);
  console.log(`shutting down: ${open} connection${open === 1 ? "" : "s"} open`);
  let served = 0;
  let bytes = 0;
  for (const [i, report] of reports.entries()) {
    if (report.type !== "stopped") continue;
    console.log(`worker ${i + 1} served ${plural(report.served, "connection")}`);
    served += report.served;
    bytes += report.bytes;
  }
  for (const worker of workers) worker.terminate();
  console.log(`served ${plural(served, "connection")}, echoed ${bytes} bytes`);
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

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
