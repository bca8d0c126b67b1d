/**
 * `deno task lesson20-cluster`: a whole chat service on one machine.
 *
 * Starts a local Redis (`redis-server` on 127.0.0.1, a free port, nothing
 * saved to disk; or uses `--redis URL`) and two lesson 20 chat servers (or
 * `--servers N`) on ports 65420, 65421, ... next to each other, prints how to
 * connect to each, and shows what they print, each line marked with its
 * server. Ctrl-C stops every process it started, by its process id: the chat
 * servers first (they say bye to their users), then Redis.
 *
 * The helpers are exported: the benchmark (bench.ts) and the tests start
 * Redis and the servers the same way.
 */
import { TextLineStream } from "@std/streams";
import { LessonError, parseFlags, runMain, shutdownRequested } from "../../lib/mod.ts";
import { closedPort, taskArgs } from "../../lib/process.ts";

/** The repository's root: programs run from there, as `deno task` runs them. */
const ROOT = new URL("../../", import.meta.url);

/**
 * How many of a program's first lines {@linkcode ChildProgram} keeps: enough
 * for its start (`listening on`, `redis: connected`) and for an error message
 * if it fails to start. A cluster runs for hours: keeping every line would
 * grow its memory without end.
 */
const KEPT_LINES = 200;

/** One program we started: its output line by line, a bounded wait for a line, a stop. */
export class ChildProgram {
  /** Its first lines (stdout and stderr), at most {@linkcode KEPT_LINES}; `onLine` sees them all. */
  readonly lines: string[] = [];
  /** The operating system's id of the process. */
  readonly pid: number;
  /** Resolves with the exit code when the program ends. */
  readonly exited: Promise<number>;
  #child: Deno.ChildProcess;
  /** Called with every line as it comes (the waits of waitForLine). */
  #listeners = new Set<(line: string) => void>();
  #reading: Promise<void>;

  /**
   * Starts `program` with `args` in the repository's root.
   * @param onLine called with each line it prints (e.g. to show it, marked)
   */
  constructor(program: string, args: string[], onLine: (line: string) => void = () => {}) {
    try {
      this.#child = new Deno.Command(program, {
        args,
        cwd: ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && program === "redis-server") {
        throw new LessonError(
          "redis-server is not installed: install it (Debian/Ubuntu: apt-get install " +
            "redis-server), or pass --redis URL of a running Redis",
        );
      }
      throw error;
    }
    this.pid = this.#child.pid;
    const read = async (stream: ReadableStream<Uint8Array>) => {
      const lines = stream.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream());
      for await (const line of lines as AsyncIterable<string>) {
        if (this.lines.length < KEPT_LINES) this.lines.push(line);
        onLine(line);
        for (const listener of this.#listeners) listener(line);
      }
    };
    this.#reading = Promise.all([read(this.#child.stdout), read(this.#child.stderr)]).then(
      () => {},
    );
    this.exited = this.#child.status.then((status) => status.code);
  }

  /** Waits up to `timeoutMs` for a line matching `pattern`; returns it, or undefined. */
  waitForLine(pattern: RegExp, timeoutMs = 10_000): Promise<string | undefined> {
    const found = this.lines.find((line) => pattern.test(line));
    if (found !== undefined) return Promise.resolve(found);
    // Otherwise each new line is tested as it comes (kept in `lines` or not).
    return new Promise((resolve) => {
      const done = (line?: string) => {
        clearTimeout(timer);
        this.#listeners.delete(onLine);
        resolve(line);
      };
      const onLine = (line: string) => {
        if (pattern.test(line)) done(line);
      };
      this.#listeners.add(onLine);
      const timer = setTimeout(done, timeoutMs);
      this.#reading.then(() => done()); // it has printed all it will
    });
  }

  /** Sends `signal` and returns at once (e.g. SIGSTOP and SIGCONT to freeze a program and thaw it). */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Sends `signal`; after `graceMs` without an exit, SIGKILL. Returns the exit code. */
  async stop(signal: Deno.Signal = "SIGTERM", graceMs = 5_000): Promise<number> {
    try {
      this.#child.kill(signal);
    } catch { /* it has exited already */ }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }, graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    await this.#reading;
    return code;
  }
}

/** A Redis we started: where it is, and the process. */
export interface LocalRedis {
  url: string;
  port: number;
  process: ChildProgram;
}

/**
 * Starts `redis-server` on 127.0.0.1 (a free port unless given) with nothing
 * saved to disk, and waits (bounded) until it accepts connections.
 */
export async function startRedis(
  port = closedPort(), // a free port: the system picks it, we let it go at once
  onLine?: (line: string) => void,
): Promise<LocalRedis> {
  const process = new ChildProgram("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ], onLine);
  if (!await process.waitForLine(/Ready to accept connections/)) {
    await process.stop("SIGKILL");
    throw new LessonError(
      `redis-server did not start on port ${port}:\n${process.lines.join("\n")}`,
    );
  }
  return { url: `redis://127.0.0.1:${port}`, port, process };
}

/** Starts a lesson's server task (e.g. `lesson20-server`) with `args` and waits for `listening on`. */
export async function startServer(
  task: string,
  args: string[],
  onLine?: (line: string) => void,
): Promise<{ port: number; process: ChildProgram }> {
  const process = new ChildProgram("deno", [...taskArgs(task), ...args], onLine);
  const line = await process.waitForLine(/^listening on /, 30_000);
  const port = Number(line?.match(/:(\d+)$/)?.[1]);
  if (!port) {
    await process.stop("SIGKILL");
    throw new LessonError(`${task} did not start:\n${process.lines.join("\n")}`);
  }
  return { port, process };
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 20,
      role: "server",
      task: "lesson20-cluster",
      summary: "Starts a local redis-server (or uses --redis) and lesson 20 chat servers on " +
        "ports next to each other; Ctrl-C stops all of them.",
      flags: {
        redis: {
          type: "string",
          description: "use this Redis instead of starting one",
          value: "URL",
        },
        servers: {
          type: "number",
          description: "how many chat servers",
          default: 2,
          min: 1,
          max: 9,
        },
      },
    });
    const started: ChildProgram[] = [];
    const stopAll = async () => {
      // In a terminal, Ctrl-C reaches every process of the group: give them a
      // second to stop by themselves, then stop whoever is left by its id.
      // Chat servers first (they tell the others who left), Redis last.
      const all = started.map((child) => child.exited);
      await Promise.race([Promise.all(all), new Promise((resolve) => setTimeout(resolve, 1000))]);
      for (const child of started.reverse()) await child.stop("SIGTERM");
    };
    try {
      let url = flags.redis;
      if (url === undefined) {
        const redis = await startRedis();
        started.push(redis.process);
        url = redis.url;
        console.log(
          `redis: redis-server on 127.0.0.1:${redis.port} (pid ${redis.process.pid}), ` +
            "nothing saved to disk",
        );
      }
      const servers = [];
      for (let i = 1; i <= flags.servers; i++) {
        const port = flags.port === 0 ? 0 : flags.port + i - 1;
        const args = ["--host", flags.host, "--port", String(port), "--redis", url];
        const server = await startServer("lesson20-server", args, (line) => {
          console.log(`[server ${i}] ${line}`);
        });
        started.push(server.process);
        servers.push(server);
        // Connected to Redis (or said why not) before anyone is told to connect.
        await server.process.waitForLine(/^redis: /, 5_000);
      }
      for (const [i, server] of servers.entries()) {
        console.log(
          `chat server ${i + 1} (pid ${server.process.pid}): ` +
            `deno task lesson20-client --port ${server.port}`,
        );
      }
      console.log("Ctrl-C stops them all");
    } catch (error) {
      await stopAll();
      throw error;
    }
    // Until Ctrl-C (or SIGTERM), or until every program has ended by itself.
    const signalled = shutdownRequested();
    for (const child of started) {
      child.exited.then((code) => console.log(`pid ${child.pid} exited with code ${code}`));
    }
    await Promise.race([signalled, Promise.all(started.map((child) => child.exited))]);
    console.log("stopping every process we started");
    await stopAll();
  });
}
