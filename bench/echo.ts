/**
 * `deno task bench-echo`: the course's echo benchmark.
 *
 * It starts each echo server in turn (lesson 08, lesson 10 with 1 and 2
 * workers, a plain `Deno.listen` echo, a `node:net` echo run in Deno, and the
 * same file run in Node when `node` is installed), loads it with the course's
 * own load generator (lib/load.ts, lesson 09's `--load`) in several processes
 * (bench/echo_load.ts), and prints markdown tables of medians and ratios:
 *
 * - `pp1`, `pp100`: 64-byte ping-pong, round trips per second, 1 and 100 connections
 * - `stream`: MB/s with a few connections writing as fast as they can
 * - `idle`: the server's memory (RSS) per idle connection, in KiB
 * - `pp1000`: round trips/s and latency percentiles with 1,000 busy connections
 * - `work`: lesson 10 with `--work 200` (CPU work per chunk), 1 against 2 workers
 *
 * Every server is started on port 0 (its port read from its `listening on`
 * line), measured, then stopped and awaited. So is every load process, also
 * on an error or Ctrl-C. Each server runs with bench/echo_servers/probe.mjs
 * preloaded, which reports its CPU time and memory on request: with the load
 * processes' own CPU time, that tells which side was saturated.
 *
 * Run `deno task bench-echo --help` for the options.
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { TextLineStream } from "@std/streams";
import os from "node:os";
import { LessonError, runMain, UsageError } from "../lib/errors.ts";
import { LatencyHistogram } from "../lib/load.ts";
import { taskArgs } from "../tools/lesson_process.ts";
import type { Job, JobResult, LoadCommand, LoadMessage } from "./echo_load.ts";

const ROOT = new URL("../", import.meta.url);
const PROBE = "bench/echo_servers/probe.mjs";
const CORES = navigator.hardwareConcurrency;
/** The longest wait for one echo. Deno with 1,000 busy connections makes some wait seconds. */
const ECHO_TIMEOUT_MS = 20_000;
const EMFILE_HINT = "too many open files: run `ulimit -n 8192` first " +
  "(the bench opens a few thousand sockets)";

const USAGE = `Usage: deno task bench-echo [OPTIONS]

Starts each echo server in turn, loads it with lib/load.ts (lesson 09's load
generator) in several processes, and prints medians and ratios as markdown tables.

Options:
  --only NAMES             servers to run, comma-separated (default: all):
                           lesson08, lesson10-1w, lesson10-2w, deno-plain, deno-node-net, node
  --workloads NAMES        workloads, comma-separated (default: all):
                           pp1, pp100, stream, idle, pp1000, work
  --reps N                 repetitions; the tables show medians (default 3)
  --seconds S              traffic time of each run (default 3)
  --load-procs N           load processes for the workloads with many connections (default 2)
  --stream-connections N   connections of the stream workload (default 4)
  --idle-connections N     connections of the idle workload (default 2000)
  --busy-connections N     connections of the pp1000 workload (default 1000)
  --work MICROSECONDS      CPU work per chunk for the work workload (default 200)
  --reference NAME         the server every ratio compares with (default lesson08)
  --quick                  a smoke run: 1 rep of 0.5 s, 200 idle and 200 busy connections
  --help                   show this help and exit

Examples:
  ulimit -n 8192 && deno task bench-echo
  deno task bench-echo --only lesson08,node --workloads pp100,idle --reps 5`;

const SERVER_NAMES = [
  "lesson08",
  "lesson10-1w",
  "lesson10-2w",
  "deno-plain",
  "deno-node-net",
  "node",
] as const;
type ServerName = typeof SERVER_NAMES[number];
const WORKLOADS = ["pp1", "pp100", "stream", "idle", "pp1000", "work"] as const;
type Workload = typeof WORKLOADS[number];

/** The options, once parsed. */
interface Config {
  servers: ServerName[];
  workloads: Set<Workload>;
  reps: number;
  seconds: number;
  loadProcs: number;
  streamConnections: number;
  idleConnections: number;
  busyConnections: number;
  workUs: number;
  reference: ServerName;
}

function parseConfig(args: string[]): Config {
  if (args[0] === "--") args = args.slice(1);
  const numbers = [
    "reps",
    "seconds",
    "load-procs",
    "stream-connections",
    "idle-connections",
    "busy-connections",
    "work",
  ];
  const unknown: string[] = [];
  const flags = parseArgs(args, {
    string: [...numbers, "only", "workloads", "reference"],
    boolean: ["quick", "help"],
    unknown: (arg: string) => {
      unknown.push(arg);
      return false;
    },
  });
  if (flags.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (unknown.length > 0) {
    throw new UsageError(`unknown option ${unknown[0].split("=")[0]} (see --help)`);
  }
  const quick = flags.quick;
  const number = (name: string, fallback: number, quickValue = fallback, integer = true) => {
    const raw = (flags as Record<string, unknown>)[name];
    if (raw === undefined) return quick ? quickValue : fallback;
    const value = Number(raw);
    if (!(value > 0) || (integer && !Number.isInteger(value)) || value > 1e6) {
      throw new UsageError(`--${name} must be a positive ${integer ? "whole " : ""}number`);
    }
    return value;
  };
  const list = <T extends string>(name: string, all: readonly T[]): T[] => {
    const raw = (flags as Record<string, unknown>)[name];
    if (raw === undefined) return [...all];
    const names = String(raw).split(",").map((s) => s.trim()).filter(Boolean);
    for (const n of names) {
      if (!all.includes(n as T)) {
        throw new UsageError(`--${name}: unknown name "${n}" (choose from ${all.join(", ")})`);
      }
    }
    return all.filter((n) => names.includes(n));
  };
  const servers = list("only", SERVER_NAMES);
  const reference = (flags.reference ?? "lesson08") as ServerName;
  if (!SERVER_NAMES.includes(reference)) {
    throw new UsageError(`--reference: unknown server "${reference}"`);
  }
  return {
    servers,
    workloads: new Set(list("workloads", WORKLOADS)),
    reps: number("reps", 3, 1),
    seconds: number("seconds", 3, 0.5, false),
    loadProcs: number("load-procs", 2),
    streamConnections: number("stream-connections", 4),
    idleConnections: number("idle-connections", 2000, 200),
    busyConnections: number("busy-connections", 1000, 200),
    workUs: number("work", 200),
    // Without the reference among the servers, compare with the first one.
    reference: servers.includes(reference) ? reference : servers[0],
  };
}

// ---------------------------------------------------------------- processes

/** Every process we started and have not yet awaited: Ctrl-C stops them all. */
const running = new Set<Child>();

/** Waits up to `ms`; returns whether `promise` settled first. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms)),
  ]);
  clearTimeout(timer);
  return done;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Lines that arrive from a process, waited for one at a time with a time limit. */
class Mailbox<T> {
  #items: T[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  put(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  async take(timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.#items.length === 0) {
      if (this.#closed) throw new LessonError(`${what}: the process ended`);
      if (Date.now() >= deadline) {
        throw new LessonError(`${what}: nothing within ${timeoutMs / 1000} s`);
      }
      await within(new Promise<void>((resolve) => this.#wake = resolve), deadline - Date.now());
      this.#wake = undefined;
    }
    return this.#items.shift()!;
  }
}

/** A child process with piped stdio, read line by line. */
class Child {
  readonly process: Deno.ChildProcess;
  /** The last lines of stderr, for error messages. */
  readonly stderrTail: string[] = [];
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #output: Promise<unknown>;
  #stopped: Promise<void> | undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    onStdout: (line: string) => void,
    onStderr: (line: string) => void = () => {},
  ) {
    this.process = new Deno.Command(command, {
      args,
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    running.add(this);
    this.#stdin = this.process.stdin.getWriter();
    const lines = (stream: ReadableStream<Uint8Array>, each: (line: string) => void) =>
      stream.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream()).pipeTo(
        new WritableStream({ write: each }),
      ).catch(() => {});
    this.#output = Promise.all([
      lines(this.process.stdout, onStdout),
      lines(this.process.stderr, (line) => {
        onStderr(line);
        if (line.startsWith("bench-probe ")) return;
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
      }),
    ]);
  }

  /** Where both output streams end (the process exited). */
  get outputDone(): Promise<unknown> {
    return this.#output;
  }

  async writeLine(line: string): Promise<void> {
    try {
      await this.#stdin.write(new TextEncoder().encode(line + "\n"));
    } catch {
      throw new LessonError(`${this.name} is not running any more`);
    }
  }

  /**
   * Closes stdin (which ends a load process and the server's probe), sends
   * `signal` if given, and kills the process if it has not exited within 5 s.
   * Always awaits it.
   */
  stop(signal?: Deno.Signal): Promise<void> {
    this.#stopped ??= (async () => {
      await this.#stdin.close().catch(() => {});
      if (signal) this.#kill(signal);
      if (!(await within(this.process.status, 5000))) this.#kill("SIGKILL");
      await this.process.status;
      await this.#output;
      running.delete(this);
    })();
    return this.#stopped;
  }

  #kill(signal: Deno.Signal) {
    try {
      this.process.kill(signal);
    } catch {
      // already exited
    }
  }
}

/** Stops every process still running (on an error or Ctrl-C). */
async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop("SIGTERM")));
}

/** Raised when a process ran out of file descriptors: the whole run stops with a hint. */
class TooManyFilesError extends LessonError {
  constructor() {
    super(EMFILE_HINT);
  }
}

const isEmfile = (text: string) => /too many open files|os error 24/i.test(text);

// ---------------------------------------------------------------- servers

/** How to start one of the servers. */
interface ServerSpec {
  name: ServerName;
  label: string;
  command: string;
  args: string[];
  /** The event loops that do the work: the most CPU the server can use, in cores. */
  threads: number;
}

/** The `--flags` a lesson server's `--help` lists (lesson 10's flags are still growing). */
const helpCache = new Map<string, Set<string>>();
async function lessonFlags(task: string): Promise<Set<string>> {
  let known = helpCache.get(task);
  if (!known) {
    const { stdout } = await new Deno.Command("deno", {
      args: [...taskArgs(task), "--help"],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(30_000), // killed (and awaited) if it hangs
    }).output();
    known = new Set(new TextDecoder().decode(stdout).match(/--[a-z][a-z-]*/g) ?? []);
    helpCache.set(task, known);
  }
  return known;
}

/** A lesson task's arguments with the probe preloaded (`deno run --preload=...`). */
function withProbe(args: string[]): string[] {
  return [args[0], `--preload=${PROBE}`, ...args.slice(1)];
}

async function serverSpec(name: ServerName, extra: string[] = []): Promise<ServerSpec> {
  const lesson = async (task: string, flags: string[], label: string, threads: number) => {
    const known = await lessonFlags(task);
    const quiet = known.has("--quiet") ? ["--quiet"] : [];
    return {
      name,
      label,
      command: "deno",
      args: [...withProbe(taskArgs(task)), ...flags, ...quiet, ...extra],
      threads,
    };
  };
  const plain = (file: string, label: string): ServerSpec => ({
    name,
    label,
    command: "deno",
    args: ["run", "--no-prompt", `--preload=${PROBE}`, "--allow-net=127.0.0.1", file],
    threads: 1,
  });
  switch (name) {
    case "lesson08":
      return await lesson("lesson08-server", [], "lesson 08", 1);
    case "lesson10-1w":
      return await lesson("lesson10-server", ["--workers", "1"], "lesson 10, 1 worker", 1);
    case "lesson10-2w":
      return await lesson(
        "lesson10-server",
        ["--workers", "2"],
        "lesson 10, 2 workers",
        Math.min(2, CORES),
      );
    case "deno-plain":
      return plain("bench/echo_servers/deno_plain.ts", "plain `Deno.listen` echo");
    case "deno-node-net":
      return plain("bench/echo_servers/node_net.mjs", "`node:net` echo in Deno");
    case "node":
      return {
        name,
        label: "`node:net` echo in Node",
        command: "node",
        args: ["--import", `./${PROBE}`, "bench/echo_servers/node_net.mjs"],
        threads: 1,
      };
  }
}

/** What the probe in a server reports: CPU time so far and resident memory. */
interface Sample {
  cpuMs: number;
  rss: number;
  /** `performance.now()` here when the answer arrived. */
  at: number;
}

/** A running server, with its probe. */
class ServerProcess {
  port = 0;
  /** Set when the server printed "too many open files". */
  emfile = false;
  #samples = new Mailbox<Sample>();
  #stdout = new Mailbox<string>();

  private constructor(readonly spec: ServerSpec, readonly child: Child) {}

  /** Starts the server on port 0 and waits (20 s at most) for its `listening on` line. */
  static async start(spec: ServerSpec): Promise<ServerProcess> {
    let server: ServerProcess | undefined = undefined;
    const child = new Child(
      spec.label,
      spec.command,
      [...spec.args, "--port", "0"],
      (line) => server?.onStdout(line),
      (line) => server?.onStderr(line),
    );
    server = new ServerProcess(spec, child);
    child.outputDone.then(() => server.#stdout.close());
    try {
      while (true) {
        const line = await server.#stdout.take(20_000, `${spec.label}: "listening on"`);
        const match = line.match(/^listening on .*:(\d+)$/);
        if (match) {
          server.port = Number(match[1]);
          return server;
        }
      }
    } catch (error) {
      await child.stop("SIGKILL");
      const why = child.stderrTail.join(" / ");
      if (isEmfile(why)) throw new TooManyFilesError();
      throw new LessonError(`${(error as Error).message}${why ? `: ${why}` : ""}`);
    }
  }

  onStdout(line: string): void {
    if (this.port === 0) this.#stdout.put(line); // later lines are not needed
  }

  onStderr(line: string): void {
    if (line.startsWith("bench-probe ")) {
      const { cpuMs, rss } = JSON.parse(line.slice("bench-probe ".length));
      this.#samples.put({ cpuMs, rss, at: performance.now() });
    } else if (isEmfile(line)) {
      this.emfile = true;
    }
  }

  /** Asks the probe for the server's CPU time and memory (5 s at most). */
  async sample(): Promise<Sample> {
    await this.child.writeLine("sample");
    return await this.#samples.take(5000, `${this.spec.label}'s probe`);
  }

  stop(): Promise<void> {
    return this.child.stop("SIGTERM");
  }
}

// ---------------------------------------------------------------- load processes

/** One bench/echo_load.ts process. */
class LoadProcess {
  #inbox = new Mailbox<LoadMessage>();
  readonly child: Child;

  constructor(index: number) {
    this.child = new Child(
      `load process ${index + 1}`,
      "deno",
      ["run", "--no-prompt", "--allow-net=127.0.0.1", "bench/echo_load.ts"],
      (line) => {
        try {
          this.#inbox.put(JSON.parse(line));
        } catch {
          this.#inbox.put({ type: "failed", message: `said ${JSON.stringify(line)}` });
        }
      },
    );
    this.child.outputDone.then(() => this.#inbox.close());
  }

  send(command: LoadCommand): Promise<void> {
    return this.child.writeLine(JSON.stringify(command));
  }

  /** Waits for the next message, which must be `type`; a failure is thrown. */
  async expect<T extends LoadMessage["type"]>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<LoadMessage, { type: T }>> {
    let message: LoadMessage;
    try {
      message = await this.#inbox.take(timeoutMs, this.child.name);
    } catch (error) {
      const why = this.child.stderrTail.join(" / ");
      throw new LessonError(`${(error as Error).message}${why ? `: ${why}` : ""}`);
    }
    if (message.type === "failed") {
      if (isEmfile(message.message)) throw new TooManyFilesError();
      throw new LessonError(`${this.child.name}: ${message.message}`);
    }
    if (message.type !== type) throw new LessonError(`${this.child.name}: sent ${message.type}`);
    return message as Extract<LoadMessage, { type: T }>;
  }
}

/** The load processes, started once; after a failed workload they are replaced. */
class LoadPool {
  #procs: LoadProcess[] = [];
  constructor(readonly size: number) {}

  get(count: number): LoadProcess[] {
    while (this.#procs.length < Math.min(count, this.size)) {
      this.#procs.push(new LoadProcess(this.#procs.length));
    }
    return this.#procs.slice(0, count);
  }

  /** Stops them all (a failed job may have left some waiting mid-protocol). */
  async reset(): Promise<void> {
    await Promise.all(this.#procs.map((p) => p.child.stop("SIGTERM")));
    this.#procs = [];
  }
}

// ---------------------------------------------------------------- measuring

/** What one run of one workload against one server gave. */
interface Measurement {
  /** Round trips per second (ping-pong) or MB/s (stream) or KiB per connection (idle). */
  value: number;
  latency: LatencyHistogram;
  /** Round trips of each connection (ping-pong and stream). */
  perConnection: number[];
  /** CPU use during the traffic, in cores (1 = one core all the time). */
  serverCpu: number;
  loadCpu: number[];
  machineCpu: number;
  /** Why connections failed, if any did. */
  errors: string[];
}

/** Busy and total CPU time of the whole machine so far (ms), all cores. */
function machineTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    const work = times.user + times.nice + times.sys + times.irq;
    busy += work;
    total += work + times.idle;
  }
  return { busy, total };
}

/** `total` connections spread over at most `procs` processes, e.g. (5, 2) → [3, 2]. */
function split(total: number, procs: number): number[] {
  const n = Math.min(total, procs);
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

const readyTimeout = (connections: number) => 30_000 + 20 * connections;

/**
 * Ping-pong or stream: every load process connects, then all start at once
 * ("go"); the server's CPU is sampled at the start and after `seconds`.
 */
async function measureTraffic(
  server: ServerProcess,
  pool: LoadPool,
  job: Omit<Job, "connections" | "host" | "port">,
  connections: number,
): Promise<Measurement> {
  const counts = split(connections, pool.size);
  const procs = pool.get(counts.length);
  const full = (i: number): Job => ({
    ...job,
    host: "127.0.0.1",
    port: server.port,
    connections: counts[i],
  });
  await Promise.all(procs.map((p, i) => p.send({ type: "run", job: full(i) })));
  await Promise.all(procs.map((p, i) => p.expect("ready", readyTimeout(counts[i]))));
  const before = await server.sample();
  const machineBefore = machineTimes();
  await Promise.all(procs.map((p) => p.send({ type: "go" })));
  await sleep(job.seconds * 1000);
  const after = await server.sample();
  const machineAfter = machineTimes();
  const results: JobResult[] = (await Promise.all(
    procs.map((p) => p.expect("result", job.timeoutMs + 15_000)),
  )).map((m) => m.result);

  const latency = new LatencyHistogram();
  const perConnection = results.flatMap((r) => r.perConnection);
  let value = 0;
  const errors: string[] = [];
  for (const r of results) {
    latency.merge(r.latency);
    const seconds = r.elapsedMs / 1000;
    if (seconds > 0) {
      value += job.mode === "stream" ? r.bytes / 1e6 / seconds : r.roundTrips / seconds;
    }
    if (r.errorCount > 0) errors.push(`${r.errorCount} connections failed: ${r.errors[0]}`);
  }
  const machine = (machineAfter.busy - machineBefore.busy) /
    Math.max(1, machineAfter.total - machineBefore.total);
  return {
    value,
    latency,
    perConnection,
    serverCpu: (after.cpuMs - before.cpuMs) / Math.max(1, after.at - before.at),
    loadCpu: results.map((r) => r.cpuMs / Math.max(1, r.wallMs)),
    machineCpu: machine * CORES,
    errors,
  };
}

/** Idle: the server's RSS after a warm-up, then with `connections` idle connections open. */
async function measureIdle(
  server: ServerProcess,
  pool: LoadPool,
  connections: number,
): Promise<Measurement> {
  const counts = split(connections, pool.size);
  const procs = pool.get(counts.length);
  const job = (i: number): Job => ({
    host: "127.0.0.1",
    port: server.port,
    mode: "idle",
    connections: counts[i],
    size: 64,
    seconds: 0,
    timeoutMs: ECHO_TIMEOUT_MS,
  });
  await Promise.all(procs.map((p, i) => p.send({ type: "run", job: job(i) })));
  await Promise.all(procs.map((p) => p.expect("ready", readyTimeout(20)))); // warmed up
  await sleep(200);
  const before = await server.sample();
  await Promise.all(procs.map((p) => p.send({ type: "go" })));
  await Promise.all(procs.map((p, i) => p.expect("ready", readyTimeout(counts[i]))));
  await sleep(500); // let the server settle
  const after = await server.sample();
  await Promise.all(procs.map((p) => p.send({ type: "go" })));
  await Promise.all(procs.map((p) => p.expect("result", 15_000)));
  return {
    value: (after.rss - before.rss) / connections / 1024,
    latency: new LatencyHistogram(),
    perConnection: [],
    serverCpu: NaN,
    loadCpu: [],
    machineCpu: NaN,
    errors: [],
  };
}

/** Which side ran out of CPU, from the CPU use of each. */
function saturated(m: Measurement, threads: number): string {
  if (m.serverCpu >= 0.9 * threads) return "server-bound";
  if (Math.max(...m.loadCpu) >= 0.9) return "load-bound";
  if (m.machineCpu >= 0.9 * CORES) return "machine full";
  return "neither (latency-bound)";
}

// ---------------------------------------------------------------- output

const grouped = (value: number, digits = 0) =>
  value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const percent = (cores: number) => `${Math.round(cores * 100)}%`;

/** Milliseconds with 2-3 significant digits: 0.161, 4.57, 35.2, 198. */
function ms(value: number): string {
  if (!Number.isFinite(value)) return "-";
  return value.toFixed(value < 1 ? 3 : value < 10 ? 2 : value < 100 ? 1 : 0);
}

function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A markdown table with aligned columns; `right` marks the columns of numbers. */
function table(header: string[], rows: string[][], right: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join(" | ")
    } |`;
  const rule = widths.map((w, i) => right[i] ? `${"-".repeat(w - 1)}:` : "-".repeat(w));
  return [line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)];
}

/** One column of the main table. */
interface Column {
  workload: Workload;
  title: string;
  /** The number of one measurement, for this column. */
  of: (m: Measurement) => number;
  format: (value: number) => string;
  ratio: boolean;
}

function columns(config: Config): Column[] {
  const rate = (m: Measurement) => m.value;
  const rounded = (v: number) => grouped(v);
  const pct = (p: number) => (m: Measurement) => m.latency.percentile(p);
  const busy = grouped(config.busyConnections);
  return [
    { workload: "pp1", title: "1 conn: round trips/s", of: rate, format: rounded, ratio: true },
    {
      workload: "pp100",
      title: "100 conns: round trips/s",
      of: rate,
      format: rounded,
      ratio: true,
    },
    {
      workload: "stream",
      title: `${config.streamConnections} conns streaming: MB/s`,
      of: rate,
      format: rounded,
      ratio: true,
    },
    {
      workload: "idle",
      title: `KiB per idle conn (${grouped(config.idleConnections)})`,
      of: rate,
      format: (v) => grouped(v, 1),
      ratio: true,
    },
    {
      workload: "pp1000",
      title: `${busy} busy conns: round trips/s`,
      of: rate,
      format: rounded,
      ratio: true,
    },
    { workload: "pp1000", title: `${busy}: p50 ms`, of: pct(50), format: ms, ratio: false },
    { workload: "pp1000", title: `${busy}: p99 ms`, of: pct(99), format: ms, ratio: true },
    { workload: "pp1000", title: `${busy}: p99.9 ms`, of: pct(99.9), format: ms, ratio: false },
    {
      workload: "pp1000",
      title: `${busy}: max ms`,
      of: (m) => m.latency.max,
      format: ms,
      ratio: false,
    },
  ];
}

/** The label of a workload in the CPU table. */
function workloadLabel(workload: Workload, config: Config): string {
  switch (workload) {
    case "pp1":
      return "1 conn ping-pong";
    case "pp100":
      return "100 conns ping-pong";
    case "stream":
      return `${config.streamConnections} conns streaming`;
    case "pp1000":
      return `${grouped(config.busyConnections)} conns ping-pong`;
    default:
      return workload;
  }
}

// ---------------------------------------------------------------- the run

/** Every run: by server (or work scenario), workload, repetition. */
type Runs = Map<string, Map<Workload, (Measurement | undefined)[]>>;

function store(runs: Runs, key: string, workload: Workload, rep: number, m: Measurement) {
  if (!runs.has(key)) runs.set(key, new Map());
  const byWorkload = runs.get(key)!;
  if (!byWorkload.has(workload)) byWorkload.set(workload, []);
  byWorkload.get(workload)![rep] = m;
}

/** Node's version, or undefined if `node` is not installed. */
async function nodeVersion(): Promise<string | undefined> {
  try {
    // Without a real `node` on PATH, Deno runs itself in its place: ask which one answers.
    const { stdout, success } = await new Deno.Command("node", {
      args: ["-e", "console.log(typeof Deno === 'undefined' ? process.version : 'deno')"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(10_000),
    }).output();
    const version = new TextDecoder().decode(stdout).trim();
    return success && version.startsWith("v") ? version : undefined;
  } catch {
    return undefined; // not allowed, or it hung
  }
}

/** Runs one workload; `connections` is its number of connections. */
function runWorkload(
  workload: Workload,
  server: ServerProcess,
  pool: LoadPool,
  config: Config,
): Promise<Measurement> {
  const ping = (connections: number) =>
    measureTraffic(server, pool, {
      mode: "ping-pong",
      size: 64,
      seconds: config.seconds,
      timeoutMs: ECHO_TIMEOUT_MS,
    }, connections);
  switch (workload) {
    case "idle":
      return measureIdle(server, pool, config.idleConnections);
    case "pp1":
      return ping(1);
    case "pp100":
    case "work":
      return ping(100);
    case "pp1000":
      return ping(config.busyConnections);
    case "stream":
      return measureTraffic(server, pool, {
        mode: "stream",
        size: 64 * 1024,
        seconds: config.seconds,
        timeoutMs: ECHO_TIMEOUT_MS,
      }, config.streamConnections);
  }
}

/** One line on stderr for each finished run, so a long run shows progress. */
function progress(prefix: string, workload: Workload, m: Measurement, threads: number) {
  const value = workload === "idle"
    ? `${grouped(m.value, 1)} KiB per idle connection`
    : workload === "stream"
    ? `${grouped(m.value)} MB/s`
    : `${grouped(m.value)} round trips/s, p99 ${ms(m.latency.percentile(99))} ms`;
  const cpu = workload === "idle"
    ? ""
    : `; server ${percent(m.serverCpu)}, load ${m.loadCpu.map(percent).join(" + ")}, machine ${
      percent(m.machineCpu)
    }: ${saturated(m, threads)}`;
  console.error(`${prefix} ${workload}: ${value}${cpu}`);
}

/**
 * Starts `spec`, runs `workloads` on it, stops it. A failure is noted and
 * ends this server's turn only, except running out of file descriptors.
 */
async function runServer(
  spec: ServerSpec,
  workloads: Workload[],
  key: string,
  rep: number,
  context: { pool: LoadPool; config: Config; runs: Runs; notes: string[]; failed: string[] },
): Promise<void> {
  const prefix = `run ${rep + 1}/${context.config.reps} · ${spec.label} ·`;
  let server: ServerProcess | undefined;
  try {
    server = await ServerProcess.start(spec);
    for (const workload of workloads) {
      try {
        const m = await runWorkload(workload, server, context.pool, context.config);
        if (m.errors.length > 0) throw new LessonError(m.errors.join("; "));
        store(context.runs, key, workload, rep, m);
        progress(prefix, workload, m, spec.threads);
      } catch (error) {
        if (!(error instanceof LessonError)) throw error;
        if (server.emfile || error instanceof TooManyFilesError) throw new TooManyFilesError();
        context.failed.push(`${prefix} ${workload} failed: ${error.message}`);
        console.error(`${prefix} ${workload} failed: ${error.message}`);
        await context.pool.reset(); // some may be stuck half-way through the job
      }
    }
    if (server.emfile) throw new TooManyFilesError();
  } catch (error) {
    if (!(error instanceof LessonError) || error instanceof TooManyFilesError) throw error;
    context.failed.push(`${prefix} ${error.message}`);
    console.error(`${prefix} ${error.message}`);
  } finally {
    await server?.stop();
  }
}

async function run(): Promise<void> {
  const config = parseConfig(Deno.args);
  const notes: string[] = [];
  const node = config.servers.includes("node") ? await nodeVersion() : undefined;
  let names = config.servers;
  if (names.includes("node") && !node) {
    names = names.filter((n) => n !== "node");
    notes.push("`node` is not installed (not on PATH): its row is left out.");
  }
  const specs = await Promise.all(names.map((name) => serverSpec(name)));
  // Idle first: the memory of a fresh server, before the others' traffic.
  const order: Workload[] = (["idle", "pp1", "pp100", "stream", "pp1000"] as const)
    .filter((w) => config.workloads.has(w));

  let workSpecs: ServerSpec[] = [];
  if (config.workloads.has("work")) {
    if ((await lessonFlags("lesson10-server")).has("--work")) {
      const work = ["--work", String(config.workUs)];
      workSpecs = await Promise.all([
        serverSpec("lesson10-1w", work),
        serverSpec("lesson10-2w", work),
      ]);
    } else {
      notes.push(
        "lesson 10's server has no `--work` flag yet: the CPU-bound scenario was skipped.",
      );
    }
  }

  const perServer = order.length * (config.seconds + 2) + 2;
  const estimate = config.reps *
    (specs.length * perServer + workSpecs.length * (config.seconds + 4));
  console.error(
    `bench-echo: ${specs.length} servers × ${order.length} workloads × ${config.reps} runs of ` +
      `${config.seconds} s, about ${Math.ceil(estimate)} s in all`,
  );

  const pool = new LoadPool(config.loadProcs);
  const runs: Runs = new Map();
  const failed: string[] = [];
  const context = { pool, config, runs, notes, failed };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const onSignal = () => {
    console.error("interrupted: stopping every process");
    stopAll().finally(() => Deno.exit(130));
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  try {
    // Each run goes through every server, so a slow minute on the shared
    // machine hits all of them, and the ratios of one run stay fair.
    for (let rep = 0; rep < config.reps; rep++) {
      for (const spec of specs) await runServer(spec, order, spec.name, rep, context);
      for (const spec of workSpecs) {
        await runServer(
          { ...spec, label: `${spec.label}, --work ${config.workUs}` },
          [
            "work",
          ],
          `work-${spec.name}`,
          rep,
          context,
        );
      }
    }
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    await pool.reset();
    await stopAll();
  }

  const header = [
    `Deno ${Deno.version.deno}${node ? `, Node ${node}` : ""}, ${CORES} cores.`,
    `Median of ${config.reps} run${config.reps === 1 ? "" : "s"} of ${config.seconds} s;`,
    `load: lib/load.ts in ${config.loadProcs} process${config.loadProcs === 1 ? "" : "es"}`,
    `(1 for 1 connection), 64-byte messages (stream: 64 KiB writes), every byte checked.`,
  ].join(" ");
  const out = [
    "## Echo servers",
    "",
    "```sh",
    ["deno task bench-echo", ...Deno.args].join(" "),
    "```",
    "",
    header,
    "",
    ...report(specs, config, runs),
    ...workReport(workSpecs, config, runs),
  ];
  const all = [...notes, ...failed];
  if (all.length > 0) out.push("", "Notes:", "", ...all.map((n) => `- ${n}`));
  console.log(out.join("\n"));
  if (failed.length > 0) throw new LessonError(`${failed.length} runs failed: see the notes above`);
}

/** The main table, the CPU table and (with several runs) every run's numbers. */
function report(specs: ServerSpec[], config: Config, runs: Runs): string[] {
  const cols = columns(config).filter((c) => config.workloads.has(c.workload));
  if (cols.length === 0 || specs.length === 0) return [];
  const reference = specs.find((s) => s.name === config.reference)!;
  const values = (key: string, col: Column) =>
    Array.from(
      { length: config.reps },
      (_, rep) => {
        const m = runs.get(key)?.get(col.workload)?.[rep];
        return m ? col.of(m) : NaN;
      },
    );
  const cell = (spec: ServerSpec, col: Column) => {
    const mine = values(spec.name, col);
    const value = median(mine);
    if (!Number.isFinite(value)) return "-";
    if (!col.ratio) return col.format(value);
    const ref = values(reference.name, col);
    const ratio = median(mine.map((v, rep) => v / ref[rep]));
    return Number.isFinite(ratio)
      ? `${col.format(value)} (${ratio.toFixed(2)}×)`
      : col.format(value);
  };
  const right = [false, ...cols.map(() => true)];
  const out = [
    `×: compared with ${reference.label} in the same run (the median of the runs' ratios).`,
    "Higher is better, except KiB and ms.",
    "",
    ...table(
      ["server", ...cols.map((c) => c.title)],
      specs.map((spec) => [spec.label, ...cols.map((c) => cell(spec, c))]),
      right,
    ),
  ];

  const cpuWorkloads = (["pp1", "pp100", "stream", "pp1000"] as const).filter((w) =>
    config.workloads.has(w)
  );
  if (cpuWorkloads.length > 0) {
    out.push(
      "",
      "CPU during the traffic (medians; 100% = one core): who was saturated.",
      "",
      ...cpuTable(specs.map((s) => [s, s.name]), cpuWorkloads, config, runs),
    );
  }
  if (config.workloads.has("pp1000")) {
    const stat = (spec: ServerSpec, of: (m: Measurement) => number) => {
      const all = runs.get(spec.name)?.get("pp1000") ?? [];
      return median(all.filter((m): m is Measurement => !!m).map(of));
    };
    const fewest = (m: Measurement) => Math.min(...m.perConnection);
    const most = (m: Measurement) => Math.max(...m.perConnection);
    out.push(
      "",
      `Fairness with ${grouped(config.busyConnections)} busy connections (medians over the runs).`,
      "",
      ...table(
        ["server", "round trips per connection: fewest / median / most", "longest wait, ms"],
        specs.map((spec) => [
          spec.label,
          [fewest, (m: Measurement) => median(m.perConnection), most]
            .map((f) => stat(spec, f)).map((v) => Number.isFinite(v) ? grouped(v) : "-")
            .join(" / "),
          ms(stat(spec, (m) => m.latency.max)),
        ]),
        [false, true, true],
      ),
    );
  }
  if (config.reps > 1) {
    out.push(
      "",
      "Every run (the machine is shared: compare the rows of one run).",
      "",
      ...table(
        ["server", ...cols.map((c) => c.title)],
        specs.map((spec) => [
          spec.label,
          ...cols.map((c) =>
            values(spec.name, c).map((v) => Number.isFinite(v) ? c.format(v) : "-").join(" / ")
          ),
        ]),
        right,
      ),
    );
  }
  return out;
}

function cpuTable(
  rows: [ServerSpec, string][],
  workloads: readonly Workload[],
  config: Config,
  runs: Runs,
): string[] {
  const body: string[][] = [];
  for (const [spec, key] of rows) {
    for (const workload of workloads) {
      const ms = (runs.get(key)?.get(workload) ?? []).filter((m): m is Measurement => !!m);
      if (ms.length === 0) continue;
      const procs = Math.max(...ms.map((m) => m.loadCpu.length));
      const m: Measurement = {
        ...ms[0],
        serverCpu: median(ms.map((m) => m.serverCpu)),
        loadCpu: Array.from({ length: procs }, (_, i) => median(ms.map((m) => m.loadCpu[i]))),
        machineCpu: median(ms.map((m) => m.machineCpu)),
      };
      body.push([
        spec.label,
        workloadLabel(workload, config),
        percent(m.serverCpu),
        m.loadCpu.map(percent).join(" + "),
        `${percent(m.machineCpu)} of ${CORES * 100}%`,
        saturated(m, spec.threads),
      ]);
    }
  }
  return table(
    ["server", "workload", "server CPU", "load CPU (each process)", "machine", "saturated"],
    body,
    [false, false, true, true, true, false],
  );
}

/** The CPU-bound scenario: lesson 10 with --work, 2 workers against 1. */
function workReport(specs: ServerSpec[], config: Config, runs: Runs): string[] {
  if (specs.length !== 2) return [];
  const rates = (spec: ServerSpec) =>
    Array.from({ length: config.reps }, (_, rep) => {
      const m = runs.get(`work-${spec.name}`)?.get("work")?.[rep];
      return m ? m.value : NaN;
    });
  const [one, two] = specs.map(rates);
  const ratio = median(two.map((v, rep) => v / one[rep]));
  const labelled = specs.map((s) => ({ ...s, label: `${s.label}, --work ${config.workUs}` }));
  return [
    "",
    `### CPU-bound: lesson 10 with \`--work ${config.workUs}\` (µs of CPU per chunk)`,
    "",
    ...table(
      ["server", "100 conns: round trips/s", "every run"],
      labelled.map((s, i) => [
        s.label,
        Number.isFinite(median([one, two][i])) ? grouped(median([one, two][i])) : "-",
        [one, two][i].map((v) => Number.isFinite(v) ? grouped(v) : "-").join(" / "),
      ]),
      [false, true, true],
    ),
    "",
    ...cpuTable(labelled.map((s) => [s, `work-${s.name}`]), ["work"], config, runs),
    "",
    Number.isFinite(ratio)
      ? `2 workers ÷ 1 worker: ${ratio.toFixed(2)}× (median of the runs' ratios; ` +
        `the course asks for at least 1.60×: ${ratio >= 1.6 ? "met" : "NOT met"}).`
      : "2 workers ÷ 1 worker: - (a run failed, see the notes).",
  ];
}

if (import.meta.main) await runMain(run);
