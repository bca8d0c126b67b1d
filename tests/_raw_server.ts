/**
 * A lesson server started without `LessonServer`, for the few tests that need
 * what it hides: the server's process id (to read its memory use with
 * `ps`) or a lower file-descriptor limit (`prlimit --nofile=N`).
 * Like `LessonServer`, every wait has a time limit and `stop()` (or
 * `await using`) always kills and awaits the process.
 */
import { taskArgs } from "../tools/lesson_process.ts";

/** The output and exit code of a stopped {@linkcode RawServer}. */
export interface RawResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A lesson server process started directly with `deno` (or under `prlimit`). */
export class RawServer implements AsyncDisposable {
  /** The process id of the server (of prlimit's `deno` child: prlimit execs it). */
  readonly pid: number;
  /** The port it listens on. */
  port = 0;
  #child: Deno.ChildProcess;
  #stdout = "";
  #stderr = "";
  #reading: Promise<void>;
  #result: RawResult | undefined;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.pid = child.pid;
    const collect = async (stream: ReadableStream<Uint8Array>, out: "stdout" | "stderr") => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        if (out === "stdout") this.#stdout += text;
        else this.#stderr += text;
      }
    };
    this.#reading = Promise.all([collect(child.stdout, "stdout"), collect(child.stderr, "stderr")])
      .then(() => {});
  }

  /**
   * Starts `task` on `--port 0` with `args`; with `nofile`, under
   * `prlimit --nofile=N` (at most N open file descriptors).
   */
  static async start(
    task: string,
    args: string[] = [],
    options: { nofile?: number } = {},
  ): Promise<RawServer> {
    const command = [...taskArgs(task), "--port", "0", ...args];
    const child = options.nofile === undefined
      ? new Deno.Command("deno", { args: command, stdout: "piped", stderr: "piped" }).spawn()
      : new Deno.Command("prlimit", {
        args: [`--nofile=${options.nofile}`, "deno", ...command],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    const server = new RawServer(child);
    if (!await server.waitFor(/^listening on .*:(\d+)$/m, 20_000)) {
      const result = await server.stop("SIGKILL");
      throw new Error(`${task} did not start:\n${result.stdout}${result.stderr}`);
    }
    server.port = Number(server.#stdout.match(/^listening on .*:(\d+)$/m)![1]);
    return server;
  }

  /** Everything printed on stdout so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** Waits up to `timeoutMs` for stdout to match `pattern`. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.#stdout)) {
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return true;
  }

  /** The server's resident memory in KiB, from `ps -o rss=` (Deno may not read /proc). */
  async rssKiB(): Promise<number> {
    const ps = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(this.pid)] })
      .output();
    const kib = Number(new TextDecoder().decode(ps.stdout).trim());
    if (!ps.success || !(kib > 0)) throw new Error(`ps found no process ${this.pid}`);
    return kib;
  }

  /** Sends `signal` (e.g. SIGSTOP and SIGCONT, to pause the server and go on). */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Sends `signal`, waits up to 5 s, then kills; returns the output. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<RawResult> {
    if (this.#result) return this.#result;
    const kill = (sig: Deno.Signal) => {
      try {
        this.#child.kill(sig);
      } catch {
        // already exited
      }
    };
    kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#child.status,
      new Promise((resolve) => timer = setTimeout(resolve, 5_000)),
    ]);
    clearTimeout(timer);
    kill("SIGKILL");
    const status = await this.#child.status;
    await this.#reading;
    this.#result = { code: status.code, stdout: this.#stdout, stderr: this.#stderr };
    return this.#result;
  }

  /** Stops the server (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
