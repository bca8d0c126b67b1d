/**
 * Runs a lesson's server and client as real processes, for the tests and the tour.
 *
 * The command of each program is read from its task in `deno.json`, so a test
 * runs it with exactly the permissions a learner's `deno task` has. Servers
 * start on `--port 0` and we read the real port from their `listening on
 * HOST:PORT` line. Every wait has a time limit, and every process is killed
 * and awaited, whatever happens.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);
/** Where the programs run: this course, or a scratch copy of it (see {@linkcode runProgramsIn}). */
let programRoot = ROOT;
/** Told what every finished program printed (see {@linkcode watchPrograms}). */
let programWatcher: ((task: string, result: RunResult) => void) | undefined;

/**
 * Runs the lesson programs from `dir`, a copy of the course (its deno.json,
 * lib/ and lessons/), instead of from this one; no argument goes back. The
 * tasks, and so the permissions, stay this course's. tools/exercise.ts runs
 * a lesson's tests this way, with the learner's file in the lesson's place.
 */
export function runProgramsIn(dir?: URL): void {
  programRoot = dir ?? ROOT;
}

/**
 * The URL of a lesson module, e.g. `lessons/12-multi-user-chat/room.ts`, in
 * the course the programs run from: a check that imports a lesson's module
 * (to test one class of it directly) gets the learner's file under
 * `deno task exercise NN`, and the lesson's own under `deno test`.
 */
export function lessonModule(path: string): string {
  return new URL(path, programRoot).href;
}

/**
 * Where the programs run now: this course, or the copy {@linkcode runProgramsIn}
 * named (lesson 18's tests make certificates there, once per copy).
 */
export function programsRoot(): URL {
  return programRoot;
}

/**
 * Calls `watcher` with the output of every program that finishes (a client,
 * or a server once stopped); no argument stops. tools/exercise.ts shows what
 * the learner's program printed when a check fails.
 */
export function watchPrograms(watcher?: (task: string, result: RunResult) => void): void {
  programWatcher = watcher;
}

/** The output of a finished program. */
export interface RunResult {
  /** Exit code (a killed process reports a non-zero code). */
  code: number;
  /** Everything printed on stdout. */
  stdout: string;
  /** Everything printed on stderr. */
  stderr: string;
  /** True if we had to kill it because it ran past its time limit. */
  timedOut: boolean;
}

// Lesson 20's cluster needs these too, and lessons never import tools/: they live in lib/.
import { closedPort, taskArgs } from "../lib/process.ts";
export { closedPort, taskArgs };

/**
 * True for a program that uses a Unix socket path instead of a port (its
 * task's `--allow-net` names a `unix:` path, lesson 17): it gets no `--port`.
 */
export function usesUnixSocket(task: string): boolean {
  return taskArgs(task).some((arg) => arg.startsWith("--allow-net=unix:"));
}

/** The task name of a lesson program, e.g. `lesson02-server`. */
export function lessonTask(lesson: number, role: "server" | "client"): string {
  return `lesson${String(lesson).padStart(2, "0")}-${role}`;
}

function spawn(
  task: string,
  args: string[],
  stdin: boolean,
  maxOpenFiles?: number,
  env: Record<string, string> = {},
): Deno.ChildProcess {
  const command = [...taskArgs(task, env), ...args];
  // prlimit runs the program with a lower descriptor limit (`ulimit -n`).
  const [program, programArgs] = maxOpenFiles === undefined
    ? ["deno", command]
    : ["prlimit", [`--nofile=${maxOpenFiles}:${maxOpenFiles}`, "deno", ...command]];
  return new Deno.Command(program, {
    args: programArgs,
    cwd: programRoot,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
}

/**
 * Deno's own notice that it is fetching a package (`Download https://…`),
 * printed on stderr. It is not the program's output. Deno 2.9 prints it on
 * every run when `deno task` was the first command on an empty cache (the
 * tarballs are cached but not the registry metadata), so it is left out.
 */
const DOWNLOAD_NOTICE = /^Download https?:\/\/\S+\n/gm;

/** `text` without Deno's `Download https://…` lines. */
export function withoutDownloadNotices(text: string): string {
  return text.replace(DOWNLOAD_NOTICE, "");
}

/** Collects a stream's text as it arrives, line by line. */
class OutputCollector {
  #raw = "";
  #isStderr: boolean;
  done: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(stream: ReadableStream<Uint8Array>, isStderr = false) {
    this.#isStderr = isStderr;
    this.done = (async () => {
      for await (const piece of stream.pipeThrough(new TextDecoderStream())) {
        this.#raw += piece;
        for (const wake of this.#waiters.splice(0)) wake();
      }
      for (const wake of this.#waiters.splice(0)) wake();
    })();
  }

  /** Everything received so far (on stderr, without Deno's download notices). */
  get text(): string {
    return this.#isStderr ? withoutDownloadNotices(this.#raw) : this.#raw;
  }

  get lines(): string[] {
    return this.text.split("\n").filter((line, i, all) => line !== "" || i < all.length - 1);
  }

  /** Waits until `test(text)` holds, the stream ends, or `timeoutMs` passes. */
  async waitFor(test: (text: string) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    this.done.then(() => ended = true);
    while (!test(this.text)) {
      if (ended || Date.now() >= deadline) return test(this.text);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push(resolve)),
        this.done,
        new Promise<void>((resolve) => timer = setTimeout(resolve, deadline - Date.now())),
      ]);
      clearTimeout(timer);
    }
    return true;
  }
}

/**
 * Runs a lesson client (or any task) to completion, with a time limit.
 *
 * @param task e.g. `lesson02-client`
 * @param args extra arguments, e.g. `["--port", "40123"]`
 */
export async function runTask(
  task: string,
  args: string[],
  options: { stdin?: string | Uint8Array; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const child = spawn(task, args, options.stdin !== undefined, undefined, options.env);
  const stdout = new OutputCollector(child.stdout);
  const stderr = new OutputCollector(child.stderr, true);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killQuietly(child, "SIGKILL");
  }, options.timeoutMs ?? 20_000);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      const data = typeof options.stdin === "string"
        ? new TextEncoder().encode(options.stdin)
        : options.stdin;
      await writer.write(data).catch(() => {});
      await writer.close().catch(() => {});
    }
    const status = await child.status;
    await Promise.all([stdout.done, stderr.done]);
    const result = { code: status.code, stdout: stdout.text, stderr: stderr.text, timedOut };
    programWatcher?.(task, result);
    return result;
  } finally {
    clearTimeout(timer);
    killQuietly(child, "SIGKILL");
    await child.status;
  }
}

function killQuietly(child: Deno.ChildProcess, signal: Deno.Signal) {
  try {
    child.kill(signal);
  } catch {
    // already exited
  }
}

/**
 * A lesson server running as a child process. Start it with
 * {@linkcode LessonServer.start}; always end it with `stop()` (or `await using`).
 */
export class LessonServer implements AsyncDisposable {
  /** The port it listens on (read from its `listening on` line). */
  port = 0;
  /** The host it listens on. */
  host = "";
  /** The socket path of a Unix socket server (`listening on unix:PATH`); then no host or port. */
  path = "";
  #child: Deno.ChildProcess;
  #stdout: OutputCollector;
  #stderr: OutputCollector;
  #result: RunResult | undefined;
  #hasStdin = false;
  #task: string;

  private constructor(task: string, child: Deno.ChildProcess) {
    this.#task = task;
    this.#child = child;
    this.#stdout = new OutputCollector(child.stdout);
    this.#stderr = new OutputCollector(child.stderr, true);
  }

  /**
   * Starts `task` with `--port 0` (none for a Unix socket server) plus `args`, and waits up to `timeoutMs`
   * for its `listening on HOST:PORT` line. `options.maxOpenFiles` runs it
   * under `prlimit --nofile=N:N` (the test's run permission must allow prlimit).
   * `options.stdin` gives it a standard input to type into with `writeStdin`
   * and end with `closeStdin` (otherwise standard input is empty).
   * `options.env` adds environment variables (lesson 17's tests give it
   * their own `XDG_RUNTIME_DIR`, and so their own socket directory).
   */
  static async start(
    task: string,
    args: string[] = [],
    timeoutMs = 20_000,
    options: { maxOpenFiles?: number; stdin?: boolean; env?: Record<string, string> } = {},
  ): Promise<LessonServer> {
    const server = new LessonServer(
      task,
      spawn(
        task,
        [...(usesUnixSocket(task) ? [] : ["--port", "0"]), ...args],
        options.stdin ?? false,
        options.maxOpenFiles,
        options.env,
      ),
    );
    server.#hasStdin = options.stdin ?? false;
    const ready = await server.#stdout.waitFor(
      (text) => /^listening on .*\n/m.test(text),
      timeoutMs,
    );
    if (!ready) {
      const result = await server.stop();
      throw new Error(
        `${task} did not print "listening on" within ${timeoutMs} ms\n` +
          `stdout: ${result.stdout}\nstderr: ${result.stderr}`,
      );
    }
    const unix = server.#stdout.text.match(/^listening on unix:(.*)$/m);
    if (unix) {
      server.path = unix[1];
      return server;
    }
    const match = server.#stdout.text.match(/^listening on (.*):(\d+)$/m)!;
    server.host = match[1].replace(/^\[(.*)\]$/, "$1");
    server.port = Number(match[2]);
    return server;
  }

  /** Writes `text` to the server's standard input (started with `stdin: true`). */
  async writeStdin(text: string): Promise<void> {
    const writer = this.#child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(text));
    } finally {
      writer.releaseLock();
    }
  }

  /** Ends the server's standard input (started with `stdin: true`). */
  async closeStdin(): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
  }

  /** What the server has printed on stdout so far, as lines. */
  get lines(): string[] {
    return this.#stdout.lines;
  }

  /** What the server has printed on stderr so far. */
  get stderr(): string {
    return this.#stderr.text;
  }

  /** Waits up to `timeoutMs` for a stdout line matching `pattern`; returns whether one came. */
  waitForLine(pattern: RegExp | string, timeoutMs = 10_000): Promise<boolean> {
    const test = (line: string) =>
      typeof pattern === "string" ? line === pattern : pattern.test(line);
    return this.#stdout.waitFor(() => this.lines.some(test), timeoutMs);
  }

  /** Waits up to `timeoutMs` until stdout has at least `count` lines. */
  waitForLineCount(count: number, timeoutMs = 10_000): Promise<boolean> {
    return this.#stdout.waitFor(() => this.lines.length >= count, timeoutMs);
  }

  /** Waits until stdout has been quiet for `quietMs` (at most `timeoutMs` in all). */
  async waitForQuiet(quietMs = 300, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen = -1;
    while (seen !== this.#stdout.text.length && Date.now() < deadline) {
      seen = this.#stdout.text.length;
      await new Promise((resolve) => setTimeout(resolve, quietMs));
    }
  }

  /** Waits up to `timeoutMs` for the server to exit on its own; returns whether it did. */
  async waitForExit(timeoutMs = 10_000): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs)),
    ]);
    clearTimeout(timer);
    return exited;
  }

  /**
   * Sends `signal` (default SIGTERM), waits up to `graceMs` for the server to
   * exit, then kills it. Returns everything it printed and its exit code.
   */
  async stop(signal: Deno.Signal = "SIGTERM", graceMs = 5_000): Promise<RunResult> {
    if (this.#result) return this.#result;
    killQuietly(this.#child, signal);
    const timedOut = !(await this.waitForExit(graceMs));
    if (timedOut) killQuietly(this.#child, "SIGKILL");
    const status = await this.#child.status;
    if (this.#hasStdin) await this.closeStdin();
    await Promise.all([this.#stdout.done, this.#stderr.done]);
    this.#result = {
      code: status.code,
      stdout: this.#stdout.text,
      stderr: this.#stderr.text,
      timedOut,
    };
    programWatcher?.(this.#task, this.#result);
    return this.#result;
  }

  /** Stops the server (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
