/**
 * The reproduction of issue 12: with 1,000 connections all doing 64-byte
 * ping-pong, a `Deno.listen` echo serves some connections hundreds of times
 * while others wait, and its p99 is several times Node's. This runs each
 * echo server in turn under the same load (bench/fairness/load.mjs, in Node,
 * in 2 processes), alternating servers within each repetition, and prints the
 * latency percentiles, the replies per connection (fewest / median / most),
 * and each p99 as a ratio to Node's in the same repetition.
 *
 * Servers: `node` (bench/echo_servers/node_net.mjs in Node), `deno-node-net`
 * (the same file in Deno), `lesson08` (lesson 08's server), `lesson10-1w`
 * and `lesson10-2w` (lesson 10's, on 1 or 2 workers' event loops), and
 * `deno:VARIANT` for each variant in bench/fairness/deno_echo.ts
 * (`deno:plain`, `deno:byob`, `deno:limit-64`, ...). With `--protocol chat`
 * the load is lesson 12's chat instead (each user sends itself `/to NAME x`
 * and waits for `ok sent NAME`), for `lesson12` and `lesson12-plain` (lesson
 * 12 reading with plain `conn.read`, not in turns: bench/fairness/chat_plain.ts).
 * `lesson19` is lesson 19's proxy (`--quiet`) in front of Node's echo, and
 * `lesson19-plain` the same proxy reading with plain `conn.read`
 * (bench/fairness/proxy_plain.ts).
 *
 * Usage (from the repository root; `ulimit -n 8192` first):
 *
 *     deno task bench-fairness [--servers node,deno:plain,deno-node-net] [--connections 1000]
 *       [--seconds 5] [--reps 3] [--procs 2] [--protocol echo|chat] [--help]
 *
 * `--procs` is how many Node processes make the load; `--help` prints this text.
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { TextLineStream } from "@std/streams";
import os from "node:os";
import { runMain, UsageError } from "../lib/errors.ts";
import { echoVariant, VARIANT_NAMES } from "./fairness/deno_echo.ts";

const NET = "--allow-net=127.0.0.1";
/** The servers that are not `deno:VARIANT`. */
const SERVERS = [
  "node",
  "deno-node-net",
  "lesson08",
  "lesson10-1w",
  "lesson10-2w",
  "lesson12",
  "lesson12-plain",
  "lesson19",
  "lesson19-plain",
];

/** What to measure, from the command line. */
interface Options {
  servers: string[];
  connections: number;
  seconds: number;
  reps: number;
  procs: number;
  protocol: "echo" | "chat";
}

/** The options, checked before anything runs: a typo is a usage error, not a half-done run. */
async function parseOptions(args: string[]): Promise<Options> {
  const unknown: string[] = [];
  const flags = parseArgs(args, {
    string: ["servers", "connections", "seconds", "reps", "procs", "protocol"],
    boolean: ["help"],
    default: {
      servers: "node,deno:plain,deno-node-net",
      connections: "1000",
      seconds: "5",
      reps: "3",
      procs: "2",
      protocol: "echo",
    },
    unknown: (arg: string) => {
      unknown.push(arg);
      return false;
    },
  });
  if (flags.help) {
    // The usage is this file's header comment, without its " * " margins.
    const source = await Deno.readTextFile(new URL(import.meta.url));
    const header = source.match(/^\/\*\*\n([\s\S]*?)\n \*\//)![1];
    console.log(header.replace(/^ \*( |$)/gm, "").replace(/\n*@module$/, ""));
    Deno.exit(0);
  }
  if (unknown.length > 0) {
    throw new UsageError(`unknown option ${unknown[0].split("=")[0]} (see --help)`);
  }
  const number = (name: "connections" | "seconds" | "reps" | "procs", integer = true) => {
    const value = Number(flags[name]);
    if (!(value > 0) || (integer && !Number.isInteger(value))) {
      throw new UsageError(`--${name} must be a positive ${integer ? "whole " : ""}number`);
    }
    return value;
  };
  const servers = String(flags.servers).split(",").map((name) => name.trim()).filter(Boolean);
  for (const server of servers) {
    const known = server.startsWith("deno:")
      ? echoVariant(server.slice(5)) !== undefined
      : SERVERS.includes(server);
    if (!known) {
      throw new UsageError(
        `--servers: unknown server "${server}" (choose from ${SERVERS.join(", ")}, ` +
          `or deno:VARIANT with VARIANT one of ${VARIANT_NAMES.join(", ")})`,
      );
    }
  }
  if (servers.length === 0) throw new UsageError("--servers: name at least one server");
  if (flags.protocol !== "echo" && flags.protocol !== "chat") {
    throw new UsageError(`--protocol must be echo or chat, got "${flags.protocol}"`);
  }
  return {
    servers,
    connections: number("connections"),
    seconds: number("seconds", false),
    reps: number("reps"),
    procs: number("procs"),
    protocol: flags.protocol,
  };
}

function command(server: string, connections: number, upstream = 0): string[] {
  if (server === "node") return ["node", "bench/echo_servers/node_net.mjs"];
  if (server === "deno-node-net") return ["deno", "run", NET, "bench/echo_servers/node_net.mjs"];
  if (server === "lesson08") {
    return ["deno", "run", NET, "lessons/08-many-clients/server.ts", "--quiet", "--port", "0"];
  }
  const workers = server.match(/^lesson10-(\d+)w$/)?.[1];
  if (workers) {
    const file = "lessons/10-every-core/server.ts";
    return [
      "deno",
      "run",
      NET,
      "--allow-read=.",
      file,
      "--workers",
      workers,
      "--quiet",
      "--port",
      "0",
    ];
  }
  if (server === "lesson12" || server === "lesson12-plain") {
    const file = server === "lesson12"
      ? "lessons/12-multi-user-chat/server.ts"
      : "bench/fairness/chat_plain.ts";
    // Each user sends as fast as it is answered: far over the flood control
    // meant for people (lesson 12's README), so that is lifted here.
    const unlimited = ["--line-burst", "1000000", "--line-rate", "1000000"];
    return [
      "deno",
      "run",
      NET,
      file,
      "--port",
      "0",
      "--max-connections",
      String(connections * 2),
      ...unlimited,
    ];
  }
  if (server === "lesson19" || server === "lesson19-plain") {
    const to = [
      "--to",
      `127.0.0.1:${upstream}`,
      "--quiet",
      "--max-connections",
      String(connections),
    ];
    const file = server === "lesson19"
      ? "lessons/19-tracing-proxy/server.ts"
      : "bench/fairness/proxy_plain.ts";
    return ["deno", "run", NET, file, "--port", "0", ...to];
  }
  if (server.startsWith("deno:")) {
    return ["deno", "run", NET, "bench/fairness/deno_echo.ts", server.slice(5)];
  }
  throw new Error(`unknown server ${server}`);
}

/** Runs `argv` and gives back its stdout as a stream of lines. */
function spawn(argv: string[], stdin: "null" | "piped" = "null") {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream())
    .pipeThrough(new TextLineStream())[Symbol.asyncIterator]() as AsyncIterator<string>;
  return { child, lines };
}

/** The next line, or an error after `ms`. */
async function nextLine(lines: AsyncIterator<string>, ms: number, what: string): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    const { value, done } = await Promise.race([lines.next(), timeout]);
    if (done) throw new Error(`${what}: the process ended`);
    return value;
  } finally {
    clearTimeout(timer);
  }
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // exited already
  }
  await child.status;
}

interface Result {
  rate: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  fewest: number;
  median: number;
  most: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

/**
 * Reads lines until `listening on HOST:PORT` and gives back the port; the
 * lines after it are read and dropped (a full pipe would stop the server).
 */
async function portOf(lines: AsyncIterator<string>, server: string): Promise<number> {
  let port = 0;
  while (!port) {
    port = Number((await nextLine(lines, 20_000, server)).match(/^listening on .*:(\d+)$/)?.[1]);
  }
  (async () => {
    while (!(await lines.next()).done);
  })().catch(() => {});
  return port;
}

async function measure(server: string, options: Options): Promise<Result> {
  const { connections, seconds, procs, protocol } = options;
  // Lesson 19 is a proxy: Node's echo behind it.
  const upstream = server.startsWith("lesson19") ? spawn(command("node", connections)) : undefined;
  let main: ReturnType<typeof spawn> | undefined;
  const load: ReturnType<typeof spawn>[] = [];
  try {
    main = spawn(command(server, connections, upstream && await portOf(upstream.lines, "node")));
    const port = await portOf(main.lines, server);
    // Time to connect them all (chat: and for everyone's `joined` lines to arrive).
    const start = Date.now() + 2000 + (protocol === "chat" ? 10 * connections : 0);
    for (let i = 0; i < procs; i++) {
      const share = Math.floor(connections / procs) + (i < connections % procs ? 1 : 0);
      load.push(
        spawn([
          "node",
          "bench/fairness/load.mjs",
          ...[port, share, seconds, start, protocol].map(String),
        ]),
      );
    }
    const outputs = await Promise.all(
      load.map((l) => nextLine(l.lines, start - Date.now() + seconds * 1000 + 30_000, "load")),
    );
    const replies: number[] = [];
    const histogram = new Map<number, number>();
    for (const output of outputs) {
      const data = JSON.parse(output) as { replies: number[]; histogram: [number, number][] };
      replies.push(...data.replies);
      for (const [step, count] of data.histogram) {
        histogram.set(step, (histogram.get(step) ?? 0) + count);
      }
    }
    const steps = [...histogram.keys()].sort((a, b) => a - b);
    const total = replies.reduce((a, b) => a + b, 0);
    const percentile = (p: number) => {
      let seen = 0;
      for (const step of steps) {
        if ((seen += histogram.get(step)!) >= total * p / 100) return step / 10;
      }
      return NaN;
    };
    return {
      rate: total / seconds,
      p50: percentile(50),
      p99: percentile(99),
      p999: percentile(99.9),
      max: steps[steps.length - 1] / 10,
      fewest: Math.min(...replies),
      median: median(replies),
      most: Math.max(...replies),
    };
  } finally {
    await Promise.all(load.map((l) => stop(l.child)));
    if (main) await stop(main.child);
    if (upstream) await stop(upstream.child);
  }
}

async function main(): Promise<void> {
  const options = await parseOptions(Deno.args);
  const { servers, connections, seconds, reps, protocol } = options;
  const results = new Map<string, Result[]>(servers.map((s) => [s, []]));
  const load = () => os.loadavg()[0].toFixed(2); // how busy the shared machine was
  for (let rep = 0; rep < reps; rep++) {
    // Alternate the order, so that no server always runs first (or right after the same one).
    const order = rep % 2 ? [...servers].reverse() : servers;
    for (const server of order) {
      const r = await measure(server, options);
      results.get(server)![rep] = r;
      console.error(
        `run ${rep + 1} ${server}: p99 ${r.p99} ms, replies ${r.fewest}-${r.most}, load ${load()}`,
      );
    }
  }

  const reference = servers.includes("node") ? "node" : servers[0];
  const fmt = (v: number) => v >= 100 ? v.toFixed(0) : v.toFixed(1);
  console.log(
    `${connections} connections, ${
      protocol === "chat" ? "chat /to self" : "64-byte"
    } ping-pong, ${reps} runs of ${seconds} s (medians; ` +
      `×: p99 ÷ ${reference}'s in the same run, median of the runs)\n`,
  );
  console.log(
    "| server | round trips/s | p50 ms | p99 ms | p99 × | p99.9 ms | max ms | replies per connection: fewest / median / most | p99 of each run |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const server of servers) {
    const rs = results.get(server)!;
    const m = (key: keyof Result) => median(rs.map((r) => r[key]));
    const ratio = median(rs.map((r, rep) => r.p99 / results.get(reference)![rep].p99));
    console.log(
      `| ${server} | ${Math.round(m("rate")).toLocaleString("en-US")} | ${fmt(m("p50"))} | ` +
        `${fmt(m("p99"))} | ${ratio.toFixed(2)}× | ${fmt(m("p999"))} | ${fmt(m("max"))} | ` +
        `${m("fewest")} / ${m("median")} / ${m("most")} | ${
          rs.map((r) => fmt(r.p99)).join(" / ")
        } |`,
    );
  }
}

await runMain(main);
