/**
 * One load process of `deno task bench-echo`: bench/echo.ts starts several of
 * these, so that the load generator (lib/load.ts, lesson 09's `--load`) has
 * more than one core's worth of event loops, and merges what they report.
 *
 * It talks to bench/echo.ts with one JSON object per line, commands on stdin
 * and answers on stdout:
 *
 *     → { "type": "run", "job": {...} }   connect every connection, then
 *     ← { "type": "ready" }                 say so, and wait for
 *     → { "type": "go" }                  run the traffic for job.seconds, then
 *     ← { "type": "result", ... }           report round trips, bytes, latency
 *                                            histogram and this process's CPU time
 *
 * An `idle` job says `ready` twice: after a warm-up (the bench then reads the
 * server's memory) and once its idle connections are open (it reads it
 * again); the second `go` closes them. Any failure is answered with
 * `{ "type": "failed", "message": ... }`. The end of stdin ends the process.
 *
 * @module
 */
import { TextLineStream } from "@std/streams";
import process from "node:process";
import { LessonError } from "../lib/errors.ts";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import {
  EchoPattern,
  type LatencyHistogramData,
  type LoadOptions,
  LoadStats,
  runLoad,
} from "../lib/load.ts";
import { closeQuietly, connect } from "../lib/net.ts";

/** What one load process runs. */
export interface Job {
  host: string;
  port: number;
  mode: "ping-pong" | "stream" | "idle";
  /** Connections of this process. */
  connections: number;
  /** Bytes per message (ping-pong) or per write (stream). */
  size: number;
  /** How long the traffic runs. */
  seconds: number;
  /** The longest wait for one echo. */
  timeoutMs: number;
}

/** What a load process reports for a job. */
export interface JobResult {
  roundTrips: number;
  bytes: number;
  /** From the first byte sent to the last echo. */
  elapsedMs: number;
  errorCount: number;
  errors: string[];
  latency: LatencyHistogramData;
  /** Round trips of each connection. */
  perConnection: number[];
  /** CPU time this process used during the traffic, and the wall time it took. */
  cpuMs: number;
  wallMs: number;
}

/** One line from this process to the bench. */
export type LoadMessage =
  | { type: "ready" }
  | { type: "result"; result: JobResult }
  | { type: "failed"; message: string };

/** One line from the bench to this process. */
export type LoadCommand = { type: "run"; job: Job } | { type: "go" };

/** The number of warm-up connections before an idle job's first `ready`. */
const WARM_UP_CONNECTIONS = 20;

function send(message: LoadMessage): void {
  console.log(JSON.stringify(message));
}

// Commands arrive one per line; the bench's end (even a crash) closes our stdin.
const commands = Deno.stdin.readable.pipeThrough(new TextDecoderStream())
  .pipeThrough(new TextLineStream())[Symbol.asyncIterator]() as AsyncIterator<string>;

async function nextCommand(): Promise<LoadCommand | undefined> {
  const { value, done } = await commands.next();
  return done ? undefined : JSON.parse(value) as LoadCommand;
}

async function waitForGo(): Promise<void> {
  const command = await nextCommand();
  if (command?.type !== "go") throw new LessonError(`expected "go", got ${command?.type}`);
}

/** Ping-pong or stream: lib/load.ts does the work, started on "go". */
async function runTraffic(job: Job): Promise<JobResult> {
  let cpuStart = process.cpuUsage();
  let wallStart = performance.now();
  const common = {
    host: job.host,
    port: job.port,
    lesson: 9,
    connections: job.connections,
    size: job.size,
    timeoutMs: job.timeoutMs,
    beforeTraffic: async () => {
      send({ type: "ready" });
      await waitForGo();
      cpuStart = process.cpuUsage();
      wallStart = performance.now();
    },
  };
  const options: LoadOptions = job.mode === "stream"
    ? { ...common, mode: "stream", seconds: job.seconds }
    : { ...common, mode: "ping-pong", messages: Number.MAX_SAFE_INTEGER, seconds: job.seconds };
  const stats = await runLoad(options);
  const cpu = process.cpuUsage(cpuStart);
  return {
    roundTrips: stats.roundTrips,
    bytes: stats.bytes,
    elapsedMs: stats.elapsedMs,
    errorCount: stats.errorCount,
    errors: stats.errors,
    latency: stats.latency.toJSON(),
    perConnection: stats.roundTripsByConnection,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - wallStart,
  };
}

/** Idle: open connections that each echo one message, then hold them until "go". */
async function runIdle(job: Job): Promise<JobResult> {
  const pattern = new EchoPattern(job.size);
  const stats = new LoadStats();
  const conns: Deno.TcpConn[] = [];
  /** Opens connection `id` and checks one echo on it. */
  const open = async (id: number) => {
    const conn = await connect({ ...job, lesson: 9 });
    conns.push(conn);
    const message = pattern.bytes(id, 0, job.size);
    await writeAll(conn, message);
    const echo = new Uint8Array(job.size);
    for (let got = 0; got < echo.length;) {
      const n = await readWithTimeout(conn, echo.subarray(got), job.timeoutMs, "an echo");
      if (n === null) throw new LessonError(`connection ${id + 1}: the server closed it`);
      got += n;
    }
    if (pattern.check(id, 0, echo) >= 0) throw new LessonError(`connection ${id + 1}: wrong echo`);
    stats.roundTrips++;
    stats.bytes += job.size;
  };
  try {
    // Warm up the server's code paths first, so that their memory is not
    // counted as the idle connections'.
    for (let id = 0; id < WARM_UP_CONNECTIONS; id++) await open(id);
    for (const conn of conns.splice(0)) closeQuietly(conn);
    send({ type: "ready" });
    await waitForGo();
    for (let id = 0; id < job.connections; id++) await open(id);
    send({ type: "ready" });
    await waitForGo();
  } finally {
    for (const conn of conns) closeQuietly(conn);
  }
  return {
    roundTrips: stats.roundTrips,
    bytes: stats.bytes,
    elapsedMs: 0,
    errorCount: 0,
    errors: [],
    latency: stats.latency.toJSON(),
    perConnection: [],
    cpuMs: 0,
    wallMs: 0,
  };
}

for (let command = await nextCommand(); command; command = await nextCommand()) {
  if (command.type !== "run") {
    send({ type: "failed", message: `expected "run", got ${command.type}` });
    continue;
  }
  try {
    const job = command.job;
    const result = job.mode === "idle" ? await runIdle(job) : await runTraffic(job);
    send({ type: "result", result });
  } catch (error) {
    // Expected failures (refused, too many open files, a wrong echo) are
    // reported; anything else is a bug and gets its stack trace on stderr.
    if (!(error instanceof LessonError)) console.error(error);
    send({ type: "failed", message: error instanceof Error ? error.message : String(error) });
  }
}
