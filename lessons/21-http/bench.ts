/**
 * `deno task lesson21-bench`: the hand-written server against `Deno.serve`
 * and `node:http` (run by Node), loaded the same way with `wrk`, one at a
 * time, in one run.
 *
 * Each server serves `/style.css` from the lesson's site, reading the file
 * on each request. For each one, after a warm-up, `wrk` runs twice:
 *
 * - keep-alive: 100 connections, each sending its next request as soon as
 *   the answer came: requests per second and the 99th percentile latency;
 * - a new connection each time (`Connection: close`): requests per second.
 *
 * Each run is repeated (`--runs`, default 3; the servers take turns) and the table shows medians,
 * with the server's CPU use during the run (from /proc: one JavaScript thread
 * at ~100% means the server was the bottleneck; lower means it waited for
 * `wrk` or for the machine's other work).
 */
import { LessonError, parseFlags, runMain } from "../../lib/mod.ts";

const ROOT = new URL("../../", import.meta.url);
const TICKS_PER_SECOND = 100; // Linux's USER_HZ

interface Server {
  name: string;
  command: string;
  args: string[];
}

const SERVERS: Server[] = [
  {
    name: "lesson 21 (by hand)",
    command: "deno",
    args: [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      "--allow-read=lessons/21-http/site",
      "lessons/21-http/server.ts",
      "--port",
      "0",
      "--quiet",
      "--max-connections",
      "5000",
    ],
  },
  {
    name: "Deno.serve",
    command: "deno",
    args: [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      "--allow-read=lessons/21-http/site",
      "lessons/21-http/bench_servers/deno_serve.ts",
    ],
  },
  {
    name: "node:http (Node)",
    command: "node",
    args: ["lessons/21-http/bench_servers/node_http.mjs"],
  },
];

/** CPU seconds a process has used so far (user + system), from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  // Through cat: Deno asks for --allow-all to read /proc directly.
  const result = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stdout: "piped" })
    .output();
  const stat = new TextDecoder().decode(result.stdout);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Runs wrk; returns requests/s, p99 in ms, errors, and the server's CPU % meanwhile. */
async function wrk(
  pid: number,
  url: string,
  connections: number,
  seconds: number,
  close: boolean,
): Promise<{ rps: number; p99: number; errors: number; cpu: number }> {
  const before = await cpuSeconds(pid);
  const started = performance.now();
  const output = await new Deno.Command("wrk", {
    args: [
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      "--latency",
      ...(close ? ["-H", "Connection: close"] : []),
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - started) / 1000;
  const cpu = (await cpuSeconds(pid) - before) / wall * 100;
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new LessonError(`wrk failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const p99Match = text.match(/ 99%\s+([\d.]+)(us|ms|s)\b/);
  const unit = { us: 0.001, ms: 1, s: 1000 }[p99Match?.[2] ?? "ms"]!;
  const p99 = Number(p99Match?.[1]) * unit;
  const socketErrors = text.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const non2xx = Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = non2xx +
    (socketErrors ? socketErrors.slice(1).map(Number).reduce((a, b) => a + b) : 0);
  return { rps, p99, errors, cpu };
}

/** Starts a server; resolves with its process and port once it prints `listening on`. */
async function start(server: Server): Promise<{ child: Deno.ChildProcess; port: number }> {
  const child = new Deno.Command(server.command, {
    args: server.args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    while (!/listening on .*:(\d+)\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new LessonError(`${server.name} did not start`);
      text += value;
    }
  } finally {
    clearTimeout(timer);
  }
  // Keep reading its output, so a full pipe never blocks it.
  (async () => {
    while (!(await reader.read()).done) { /* drop */ }
  })().catch(() => {});
  return { child, port: Number(text.match(/listening on .*:(\d+)\n/)![1]) };
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 21,
    role: "server",
    task: "lesson21-bench",
    hostPort: false,
    summary: "Loads the lesson's server, Deno.serve and node:http with wrk, one at a time, and " +
      "prints a markdown table of medians.",
    flags: {
      runs: { type: "number", description: "repetitions of each measurement", default: 3, min: 1 },
      seconds: { type: "number", description: "length of each wrk run", default: 5, min: 1 },
      connections: {
        type: "number",
        description: "connections of the keep-alive run",
        default: 100,
        min: 1,
      },
    },
  });
  for (const program of ["wrk", "node"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${program}`] }).output()
      .then((result) => result.success, () => false);
    if (!found) {
      throw new LessonError(
        `${program} is not installed (Debian: apt-get install ${
          program === "node" ? "nodejs" : program
        })`,
      );
    }
  }
  const rows: string[][] = [];
  const results: {
    name: string;
    keep: number[];
    p99: number[];
    close: number[];
    cpuKeep: number[];
    cpuClose: number[];
    errors: number;
  }[] = [];
  // All three run from the start, idle, and are loaded one at a time, in
  // turns: run 1 of each, then run 2 of each, ... so a burst of other work
  // on the machine spreads over all three instead of hitting one.
  const running: { child: Deno.ChildProcess; port: number }[] = [];
  try {
    for (const server of SERVERS) {
      running.push(await start(server));
      results.push({
        name: server.name,
        keep: [],
        p99: [],
        close: [],
        cpuKeep: [],
        cpuClose: [],
        errors: 0,
      });
    }
    const url = (i: number) => `http://127.0.0.1:${running[i].port}/style.css`;
    for (const [i, { child }] of running.entries()) {
      await wrk(child.pid, url(i), flags.connections, 1, false); // warm-up (JIT, file cache)
    }
    for (let run = 0; run < flags.runs; run++) {
      for (const [i, { child }] of running.entries()) {
        const result = results[i];
        const keep = await wrk(child.pid, url(i), flags.connections, flags.seconds, false);
        const close = await wrk(child.pid, url(i), 50, flags.seconds, true);
        result.keep.push(keep.rps);
        result.p99.push(keep.p99);
        result.cpuKeep.push(keep.cpu);
        result.close.push(close.rps);
        result.cpuClose.push(close.cpu);
        result.errors += keep.errors + close.errors;
        console.error(
          `${result.name} run ${run + 1}: keep-alive ${keep.rps.toFixed(0)} req/s (p99 ` +
            `${keep.p99.toFixed(2)} ms, server CPU ${keep.cpu.toFixed(0)}%), new connections ` +
            `${close.rps.toFixed(0)} req/s (server CPU ${close.cpu.toFixed(0)}%)`,
        );
      }
    }
  } finally {
    for (const { child } of running) child.kill("SIGTERM");
    for (const { child } of running) await child.status;
  }
  const node = results.at(-1)!;
  for (const result of results) {
    rows.push([
      result.name,
      median(result.keep).toFixed(0),
      (median(result.keep) / median(node.keep)).toFixed(2),
      median(result.p99).toFixed(2),
      median(result.cpuKeep).toFixed(0) + "%",
      median(result.close).toFixed(0),
      (median(result.close) / median(node.close)).toFixed(2),
      median(result.cpuClose).toFixed(0) + "%",
      String(result.errors),
    ]);
  }
  console.log(
    `GET /style.css (200 bytes), wrk -t1, keep-alive: ${flags.connections} connections; ` +
      `new connection each time: 50 connections, Connection: close; ${flags.seconds} s, ` +
      `median of ${flags.runs}\n`,
  );
  console.log(
    "| server | keep-alive req/s | × node | p99 ms | server CPU | new-conn req/s | × node | server CPU | errors |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
});
