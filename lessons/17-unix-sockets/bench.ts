/**
 * `deno task lesson17-bench`: loopback TCP against a Unix socket, measured
 * with the course's load generator (lib/load.ts, lesson 09's `--load`).
 *
 * One server process (bench_server.ts: lesson 08's echo server on both
 * transports) and this process as the load. Each repetition runs every
 * workload on TCP and then on the Unix socket, so a busy moment on the
 * machine hits both alike; the table shows medians and the median of the
 * per-repetition ratios, Unix over TCP.
 *
 * - latency: ping-pong of 64-byte messages on 1 connection (round trips/s, p50, p99)
 * - throughput: 1 connection streaming 64 KiB writes (MB/s each way)
 *
 * Usage: deno task lesson17-bench [--reps N] [--seconds S]
 */
import { TextLineStream } from "@std/streams";
import { LessonError, type LoadOptions, parseFlags, runLoad, runMain } from "../../lib/mod.ts";
import { checkPrivateDir, defaultPath, privateDir, socketPath } from "./socket_path.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 17,
    role: "client",
    hostPort: false,
    summary: "Measures loopback TCP against a Unix socket with lib/load.ts (lesson 08's echo " +
      "server on both) and prints a markdown table.",
    flags: {
      reps: { type: "number", description: "repetitions", default: 3, min: 1, max: 20 },
      seconds: {
        type: "number",
        description: "traffic time of each run",
        default: 2,
        min: 0.2,
        max: 60,
        integer: false,
      },
    },
  });
  // In the lesson's private directory, like the server's socket (socket_path.ts).
  const PATH = socketPath(defaultPath("lesson17-bench.sock"));
  checkPrivateDir(privateDir()!, true);
  const server = new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1,unix:" + PATH,
      `--allow-read=${PATH}`,
      `--allow-write=${PATH}`,
      "lessons/17-unix-sockets/bench_server.ts",
      PATH,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const [tcpLine, unixLine] = await firstLines(server.stdout, 2);
    const port = Number(tcpLine.match(/:(\d+)$/)?.[1]);
    if (!port || !unixLine.endsWith(PATH)) {
      throw new LessonError(
        `the bench server printed "${tcpLine}" / "${unixLine}", not its addresses`,
      );
    }
    const base = { host: "127.0.0.1", port, lesson: 17, connections: 1, timeoutMs: 10_000 };
    const runs: Record<string, { tcp: number[]; unix: number[] }> = {};
    const note = (key: string, transport: "tcp" | "unix", value: number) => {
      (runs[key] ??= { tcp: [], unix: [] })[transport].push(value);
    };
    for (let rep = 1; rep <= flags.reps; rep++) {
      for (const transport of ["tcp", "unix"] as const) {
        const where = transport === "unix" ? { path: PATH } : {};
        const pp: LoadOptions = {
          ...base,
          ...where,
          size: 64,
          mode: "ping-pong",
          messages: 1e9,
          seconds: flags.seconds,
        };
        const a = await runLoad(pp);
        const st: LoadOptions = {
          ...base,
          ...where,
          size: 65536,
          mode: "stream",
          seconds: flags.seconds,
        };
        const b = await runLoad(st);
        if (a.errorCount + b.errorCount > 0) {
          throw new LessonError(
            `the load failed on ${transport}: ${[...a.errors, ...b.errors].join("; ")}`,
          );
        }
        note("round trips/s (64 B ping-pong)", transport, a.roundTrips / (a.elapsedMs / 1000));
        note("p50 latency, µs", transport, a.latency.percentile(50) * 1000);
        note("p99 latency, µs", transport, a.latency.percentile(99) * 1000);
        note("MB/s (64 KiB writes, one way)", transport, b.bytes / 1e6 / (b.elapsedMs / 1000));
        console.error(`rep ${rep}/${flags.reps} ${transport}: done`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const fmt = (x: number) =>
      x.toLocaleString("en-US", { maximumFractionDigits: x < 100 ? 1 : 0 });
    console.log(`deno task lesson17-bench --reps ${flags.reps} --seconds ${flags.seconds}\n`);
    console.log("| measure | TCP 127.0.0.1 | Unix socket | Unix / TCP |");
    console.log("| --- | --- | --- | --- |");
    for (const [key, { tcp, unix }] of Object.entries(runs)) {
      const ratio = median(tcp.map((t, i) => unix[i] / t));
      console.log(`| ${key} | ${fmt(median(tcp))} | ${fmt(median(unix))} | ${ratio.toFixed(2)} |`);
    }
  } finally {
    await server.stdin.close().catch(() => {});
    const timer = setTimeout(() => server.kill("SIGKILL"), 5000);
    await server.status;
    clearTimeout(timer);
  }
});

/** The first `count` lines of a stream (then the rest is drained in the background). */
async function firstLines(stream: ReadableStream<Uint8Array>, count: number): Promise<string[]> {
  const lines: string[] = [];
  const reader = stream.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream())
    .getReader();
  const timer = setTimeout(() => reader.cancel(), 20_000);
  while (lines.length < count) {
    const { value, done } = await reader.read();
    // Its own one-line reason is already on stderr (inherited) above ours.
    if (done) throw new LessonError("the bench server ended before it listened");
    lines.push(String(value));
  }
  clearTimeout(timer);
  reader.releaseLock();
  return lines;
}
