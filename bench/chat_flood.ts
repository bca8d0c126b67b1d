/**
 * The flood attack on lesson 12's chat (issue 17): `--users` users who read
 * everything, one well-behaved pair measuring its `/to` round trip, and
 * `--flooders` connections sending `/name f0n1`, `/name f0n2`, ... as fast as
 * they can for `--seconds`. Each rename costs a `left` and a `joined` line
 * to every user: the fan-out that one client can turn against all others.
 *
 * It prints the pair's round trip (median, p99, worst), the server's RSS
 * (before the flood, the peak during it, and after it), how many readers were
 * cut off, and what the flooders got (`ok name`, `error too-fast`, closed).
 *
 * The server is lesson 12's, started here on port 0 (`--root DIR` takes it
 * from another checkout, e.g. a worktree of an older commit), or any chat
 * server speaking lesson 12's protocol with `--chat HOST:PORT` (then RSS only
 * with `--pid PID`). The readers and the flooders run in processes of their
 * own (this script with `--part`), so that the pair's process measures the
 * server, not its own busy event loop.
 *
 * Usage: deno task bench-chat-flood [--users 300] [--flooders 1] [--seconds 8]
 *        [--reconnect | --churn] [--plain] [--chat HOST:PORT [--pid PID]] [--root DIR] [--server-args "..."]
 *
 * @module
 */
import {
  closeQuietly,
  LineDecoder,
  parseFlags,
  parseHostPort,
  runMain,
  utf8Encode,
} from "../lib/mod.ts";
import { readWithTimeout, writeAll } from "../lib/io.ts";

const FLAGS = {
  users: { type: "number", description: "users who read everything", default: 300, min: 0 },
  flooders: { type: "number", description: "connections renaming as fast as they can", default: 1 },
  seconds: { type: "number", description: "how long the flood lasts", default: 8, min: 1 },
  plain: {
    type: "boolean",
    description: "the flooders send /chat nobody, lines that cost no one else anything",
  },
  churn: {
    type: "boolean",
    description: "instead of renaming: connect, take a name, hang up, again (2 broadcasts each)",
  },
  reconnect: {
    type: "boolean",
    description: "a flooder the server closes connects again and goes on (connection churn)",
  },
  chat: { type: "string", description: "attack this chat server instead of starting one" },
  pid: { type: "number", description: "with --chat: the server's process id, for its RSS" },
  root: {
    type: "string",
    description: "start the lesson 12 server from this checkout",
    default: ".",
    value: "DIR",
  },
  "server-args": { type: "string", description: "more flags for the server", default: "" },
  part: { type: "string", description: "(internal) readers or flood", default: "main" },
} as const;

const NET = "--allow-net=127.0.0.1";

/** The next line on `conn` (lines over `decoder` kept in `pending`), or null at EOF. */
class Lines {
  #decoder = new LineDecoder(1 << 20);
  #pending: string[] = [];
  #buffer = new Uint8Array(64 * 1024);
  constructor(readonly conn: Deno.TcpConn) {}
  async next(timeoutMs = 30_000): Promise<string | null> {
    while (this.#pending.length === 0) {
      const n = await readWithTimeout(this.conn, this.#buffer, timeoutMs, "the chat server");
      if (n === null) return null;
      this.#pending.push(...this.#decoder.push(this.#buffer.subarray(0, n)));
    }
    return this.#pending.shift()!;
  }
  async until(pattern: RegExp, timeoutMs?: number): Promise<string> {
    while (true) {
      const line = await this.next(timeoutMs);
      if (line === null) throw new Error(`the chat server closed the connection before ${pattern}`);
      if (pattern.test(line)) return line;
    }
  }
}

const connect = (port: number) => Deno.connect({ hostname: "127.0.0.1", port });

/** The server's RSS in MiB (ps reads /proc/PID/status's VmRSS; Deno reads /proc only with -A). */
async function rssMiB(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  const kib = Number(new TextDecoder().decode(out.stdout).trim());
  return out.success && kib > 0 ? kib / 1024 : undefined;
}

/** The server's CPU time so far, in seconds (utime + stime of /proc/PID/stat, read by cat). */
async function cpuSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`] }).output();
  // The fields after the command name (in parentheses): utime and stime are the 12th and 13th.
  const fields = new TextDecoder().decode(out.stdout).split(") ")[1]?.split(" ") ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return out.success && Number.isFinite(ticks) ? ticks / 100 : undefined; // USER_HZ is 100
}

/** `--part readers`: N users who read everything; "ready", then a summary when stdin closes. */
async function readers(port: number, count: number): Promise<void> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < count; i += 50) {
    conns.push(
      ...await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, () => connect(port)),
      ),
    );
  }
  let cutOff = 0;
  let bytes = 0;
  let stopping = false;
  const lastLines: string[] = [];
  let namedCount = 0;
  let allNamed = () => {};
  const ready = new Promise<void>((resolve) => allNamed = resolve);
  const reading = conns.map(async (conn, i) => {
    const lines = new Lines(conn);
    await writeAll(conn, utf8Encode(`/name r${i}\n`));
    await lines.until(/^ok name /);
    if (++namedCount === count) allNamed();
    // From here on only bytes are counted: the old server sent millions of lines.
    const buffer = new Uint8Array(64 * 1024);
    let tail = "";
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        bytes += n;
        tail = (tail + new TextDecoder().decode(buffer.subarray(Math.max(0, n - 200), n)))
          .slice(-200);
      }
    } catch {
      // a reset: cut off too
    }
    if (!stopping) {
      cutOff++;
      if (lastLines.length < 3) lastLines.push(tail.trim().split("\n").at(-1) ?? "");
    }
  });
  if (count === 0) allNamed();
  await ready;
  console.log("ready");
  // Wait for stdin to close: the flood is over.
  for await (const _ of Deno.stdin.readable) { /* nothing */ }
  stopping = true;
  console.log(JSON.stringify({ cutOff, bytes, lastLines }));
  conns.forEach((conn) => closeQuietly(conn));
  await Promise.allSettled(reading);
}

/** `--part flood`: renaming connections, as fast as they can, for `seconds`. */
async function flood(
  port: number,
  count: number,
  seconds: number,
  reconnect: boolean,
  churn: boolean,
  plain: boolean,
) {
  // Started early, so that the start of a process is not measured: "ready", then wait for "go".
  console.log("ready");
  const stdin = Deno.stdin.readable.getReader();
  await stdin.read();
  stdin.releaseLock();
  const end = Date.now() + seconds * 1000;
  const stats = { sent: 0, ok: 0, tooFast: 0, otherErrors: 0, closed: 0, connections: 0 };
  let counter = 0;
  const one = async (k: number) => {
    while (Date.now() < end) {
      let conn: Deno.TcpConn;
      try {
        conn = await connect(port);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      stats.connections++;
      if (churn) {
        // Connect, take a name, hang up: one `joined` and one `left` for everyone.
        try {
          const lines = new Lines(conn);
          await writeAll(conn, utf8Encode(`/name f${k}c${++counter}\n`));
          stats.sent++;
          const answer = await lines.next(10_000);
          if (answer?.startsWith("ok name ")) stats.ok++;
          else if (answer?.startsWith("error too-fast")) stats.tooFast++;
          else stats.otherErrors++;
        } catch {
          stats.otherErrors++;
        }
        closeQuietly(conn);
        continue;
      }
      let open = true;
      // Read and throw away (counting answers), so that we are never a slow reader.
      const reading = (async () => {
        const decoder = new LineDecoder(1 << 20);
        const buffer = new Uint8Array(64 * 1024);
        try {
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            for (const line of decoder.push(buffer.subarray(0, n))) {
              if (line.startsWith("ok name ")) stats.ok++;
              else if (line.startsWith("error too-fast")) stats.tooFast++;
              else if (line.startsWith("error ")) stats.otherErrors++;
            }
          }
        } catch { /* reset */ }
        open = false;
      })();
      try {
        while (open && Date.now() < end) {
          let chunk = "";
          for (let i = 0; i < 500; i++) {
            chunk += plain ? "/chat nobody\n" : `/name f${k}n${++counter}\n`;
          }
          await writeAll(conn, utf8Encode(chunk));
          stats.sent += 500;
        }
      } catch { /* closed by the server */ }
      if (Date.now() < end) stats.closed++;
      closeQuietly(conn);
      await reading;
      if (!reconnect) break;
    }
  };
  await Promise.all(Array.from({ length: count }, (_, k) => one(k)));
  console.log(JSON.stringify(stats));
}

/** Starts a child process and returns it with its stdout as lines. */
function child(args: string[], stdin: "piped" | "null" = "null") {
  const process = new Deno.Command("deno", {
    args,
    stdin,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    new (class extends TransformStream<string, string> {
      constructor() {
        let rest = "";
        super({
          transform(chunk, controller) {
            const parts = (rest + chunk).split("\n");
            rest = parts.pop()!;
            parts.forEach((line) => controller.enqueue(line));
          },
          flush(controller) {
            if (rest) controller.enqueue(rest);
          },
        });
      }
    })(),
  ).getReader();
  return { process, next: async () => (await lines.read()).value };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main(
  flags: ReturnType<typeof parseFlags<typeof FLAGS>>,
  target: { hostname: string; port: number } | undefined,
) {
  let server: ReturnType<typeof child> | undefined;
  let port: number;
  let pid = flags.pid;
  if (target === undefined) {
    const file = `${flags.root}/lessons/12-multi-user-chat/server.ts`;
    const extra = flags["server-args"].split(" ").filter((arg) => arg !== "");
    server = child([
      "run",
      "--no-prompt",
      NET,
      file,
      "--port",
      "0",
      "--max-connections",
      "2000",
      ...extra,
    ]);
    const first = await server.next();
    const match = first?.match(/^listening on 127\.0\.0\.1:(\d+)$/);
    if (!match) throw new Error(`the server said ${JSON.stringify(first)}`);
    port = Number(match[1]);
    pid = server.process.pid;
    // Its log (who joined and left) is read and thrown away, so it never blocks.
    (async () => {
      while ((await server!.next()) !== undefined) { /* nothing */ }
    })();
  } else port = target.port;

  const self = new URL(import.meta.url).pathname;
  const common = ["run", "--no-prompt", NET, self, "--chat", `127.0.0.1:${port}`];
  const readersChild = child(
    [...common, "--part", "readers", "--users", String(flags.users)],
    "piped",
  );
  if ((await readersChild.next()) !== "ready") {
    throw new Error("the readers did not get their names");
  }

  // The well-behaved pair.
  const alice = new Lines(await connect(port));
  const bob = new Lines(await connect(port));
  await writeAll(alice.conn, utf8Encode("/name alice_rtt\n"));
  await alice.until(/^ok name alice_rtt$/);
  await writeAll(bob.conn, utf8Encode("/name bob_rtt\n"));
  await bob.until(/^ok name bob_rtt$/);
  // bob answers every message from alice with the same text.
  let bobGone = false;
  const bobLoop = (async () => {
    try {
      while (true) {
        const line = await bob.next(60_000);
        if (line === null) break;
        if (line.startsWith("error ")) console.error(`bob got: ${line}`);
        const match = line.match(/^from alice_rtt (p\d+)$/);
        if (match) await writeAll(bob.conn, utf8Encode(`/to alice_rtt ${match[1]}\n`));
      }
    } catch (error) {
      console.error(`bob: ${error}`);
    }
    bobGone = true;
  })();

  const flooder = child([
    ...common,
    "--part",
    "flood",
    "--flooders",
    String(flags.flooders),
    "--seconds",
    String(flags.seconds),
    ...(flags.reconnect ? ["--reconnect"] : []),
    ...(flags.churn ? ["--churn"] : []),
    ...(flags.plain ? ["--plain"] : []),
  ], "piped");
  if ((await flooder.next()) !== "ready") throw new Error("the flooders did not start");
  /** One round trip: alice to bob and back (bob echoes); its time, or undefined after 10 s. */
  let round = 0;
  const roundTrip = async (): Promise<number | undefined> => {
    const started = performance.now();
    const text = `p${++round}`;
    await writeAll(alice.conn, utf8Encode(`/to bob_rtt ${text}\n`));
    try {
      await alice.until(new RegExp(`^from bob_rtt ${text}$`), 10_000);
      return performance.now() - started;
    } catch {
      return undefined;
    }
  };
  // The reference, in the same run: the round trip with no flood, for 2 s.
  const quiet: number[] = [];
  for (const until = Date.now() + 2000; Date.now() < until;) {
    const rtt = await roundTrip();
    if (rtt !== undefined) quiet.push(rtt);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  quiet.sort((a, b) => a - b);
  const before = await rssMiB(pid);
  const cpuBefore = await cpuSeconds(pid);
  const floodStartedAt = performance.now();
  let peak = before ?? 0;
  const sampling = setInterval(async () => {
    const rss = await rssMiB(pid);
    if (rss !== undefined && rss > peak) peak = rss;
  }, 100);

  const go = flooder.process.stdin.getWriter();
  await go.write(utf8Encode("go\n"));
  await go.close();
  const floodResult = flooder.next();

  // Round trips every 100 ms (10 lines a second: a fast typist), for the flood's duration.
  const rtts: number[] = [];
  const slow: string[] = [];
  const floodStart = performance.now();
  let lost = 0;
  const end = Date.now() + flags.seconds * 1000;
  while (Date.now() < end && !bobGone) {
    const started = performance.now();
    const rtt = await roundTrip();
    if (rtt !== undefined) {
      rtts.push(rtt);
      if (rtts.at(-1)! > 100) {
        slow.push(
          `${rtts.at(-1)!.toFixed(0)} ms at ${((started - floodStart) / 1000).toFixed(2)} s`,
        );
      }
    } else lost++;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const bobCutOff = bobGone; // before we close bob ourselves
  const flooded = JSON.parse((await floodResult) ?? "{}");
  await flooder.process.status;
  clearInterval(sampling);
  const peakDuring = Math.max(peak, (await rssMiB(pid)) ?? 0);
  const cpuAfter = await cpuSeconds(pid);
  const busy = cpuBefore === undefined || cpuAfter === undefined
    ? "?"
    : `${
      ((cpuAfter - cpuBefore) / ((performance.now() - floodStartedAt) / 1000) * 100)
        .toFixed(0)
    }%`;
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const after = await rssMiB(pid);

  await readersChild.process.stdin.close();
  const read = JSON.parse((await readersChild.next()) ?? "{}");
  await readersChild.process.status;
  closeQuietly(alice.conn);
  closeQuietly(bob.conn);
  await bobLoop;
  if (server) {
    server.process.kill("SIGINT");
    await server.process.status;
  }

  rtts.sort((a, b) => a - b);
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const mib = (x: number | undefined) => x === undefined ? "?" : `${x.toFixed(0)} MiB`;
  console.log(
    `${flags.users} readers, ${flags.flooders} flooder${flags.flooders === 1 ? "" : "s"}` +
      `${flags.reconnect ? " (reconnecting)" : ""}${flags.churn ? " (churning)" : ""}` +
      `${flags.plain ? " (plain lines)" : ""}, ` +
      `${flags.seconds} s` +
      (target ? ` against ${flags.chat}` : ` (server: ${flags.root})`),
  );
  console.log(
    `round trip: median ${ms(percentile(rtts, 0.5))}, p99 ${ms(percentile(rtts, 0.99))}, ` +
      `worst ${ms(rtts.at(-1) ?? NaN)} (${rtts.length} round trips, ${lost} unanswered in 10 s` +
      `${bobCutOff ? ", bob was cut off" : ""})`,
  );
  console.log(
    `the same before the flood: median ${ms(percentile(quiet, 0.5))}, ` +
      `worst ${ms(quiet.at(-1) ?? NaN)} (${quiet.length} round trips)`,
  );
  if (slow.length > 0) console.log(`round trips over 100 ms: ${slow.slice(0, 10).join(", ")}`);
  console.log(
    `server RSS: before ${mib(before)}, peak ${mib(peakDuring)}, after ${mib(after)} ` +
      `(grew ${before === undefined ? "?" : mib(peakDuring - before)})`,
  );
  console.log(`server CPU during the flood: ${busy} of one core`);
  console.log(
    `readers cut off: ${read.cutOff} of ${flags.users}` +
      (read.lastLines?.length ? ` (last lines: ${read.lastLines.join(" | ")})` : "") +
      `; they read ${(read.bytes / 2 ** 20).toFixed(1)} MiB`,
  );
  console.log(
    `flooders: ${flooded.sent} lines sent, ${flooded.ok} ok name, ${flooded.tooFast} too-fast, ` +
      `${flooded.otherErrors} other errors, closed by the server ${flooded.closed} times, ` +
      `${flooded.connections} connections`,
  );
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 12,
      role: "client",
      task: "bench-chat-flood",
      summary: "Flood lesson 12's chat with renames while 300 users read; measure the others.",
      flags: FLAGS,
    });
    const target = flags.chat === undefined ? undefined : parseHostPort(flags.chat, "--chat");
    if (flags.part === "readers") return await readers(target!.port, flags.users);
    if (flags.part === "flood") {
      return await flood(
        target!.port,
        flags.flooders,
        flags.seconds,
        flags.reconnect,
        flags.churn,
        flags.plain,
      );
    }
    await main(flags, target);
  });
}
