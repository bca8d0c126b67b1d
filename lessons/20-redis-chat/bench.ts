/**
 * `deno task lesson20-bench`: what the broker costs, measured.
 *
 * The same chat load on two setups, in one run, several times:
 *
 * - one lesson 12 server, all users on it (the reference);
 * - Redis and two lesson 20 servers, the users split between them, so about
 *   half of the messages cross from one server to the other through Redis.
 *
 * `--users` users (1,000) take names, then each sends `--messages` messages
 * (20), one at a time (the next after `ok sent`), each to a random other
 * user. Every message carries an id and the time it was sent, so the
 * receiver knows how long it took, and whether it came twice, never, or to
 * the wrong user. Prints a markdown table: medians over `--reps` runs.
 */
import {
  LatencyHistogram,
  LessonError,
  LineDecoder,
  parseFlags,
  runMain,
  writeAll,
} from "../../lib/mod.ts";
import { ChildProgram, startRedis, startServer } from "./cluster.ts";

/** One benchmark user on a raw socket. */
class BenchUser {
  #decoder = new LineDecoder(1 << 16);
  #buffer = new Uint8Array(64 * 1024);
  #waiting: ((line: string) => void) | undefined;
  readonly reading: Promise<void>;

  constructor(
    readonly name: string,
    readonly conn: Deno.TcpConn,
    onMessage: (to: string, text: string) => void,
  ) {
    this.reading = (async () => {
      try {
        while (true) {
          const n = await this.conn.read(this.#buffer);
          if (n === null) return;
          for (const line of this.#decoder.push(this.#buffer.subarray(0, n))) {
            if (line.startsWith("from ")) onMessage(this.name, line);
            else if (!line.startsWith("joined ") && !line.startsWith("left ")) {
              this.#waiting?.(line);
            }
          }
        }
      } catch { /* closed at the end */ }
    })();
  }

  /** Sends a line and waits (at most 10 s) for its answer. */
  async ask(line: string): Promise<string> {
    const answer = new Promise<string>((resolve) => this.#waiting = resolve);
    await writeAll(this.conn, new TextEncoder().encode(line + "\n"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("(no answer in 10 s)"), 10_000);
    });
    const got = await Promise.race([answer, timeout]);
    clearTimeout(timer);
    return got;
  }
}

/** What one run measured. */
interface Result {
  perSecond: number;
  p50: number;
  p99: number;
  sent: number;
  delivered: number;
  lost: number;
  duplicates: number;
  misdelivered: number;
}

/** A small seeded random generator: every setup gets the same choice of recipients. */
function random(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

async function runLoad(ports: number[], users: number, messages: number): Promise<Result> {
  const latencies = new LatencyHistogram();
  const received = new Map<number, number>();
  const intended = new Map<number, string>();
  let misdelivered = 0;
  let lastDelivery = 0;
  const onMessage = (to: string, line: string) => {
    // "from u12 <id> <sent at>"
    const [, , id, at] = line.split(" ");
    const key = Number(id);
    latencies.record(performance.now() - Number(at));
    received.set(key, (received.get(key) ?? 0) + 1);
    if (intended.get(key) !== to) misdelivered++;
    lastDelivery = performance.now();
  };
  const all: BenchUser[] = [];
  try {
    // Connect and take names, 50 at a time (a burst of 1,000 would overflow the accept queue).
    for (let i = 0; i < users; i += 50) {
      const batch = [];
      for (let k = i; k < Math.min(users, i + 50); k++) {
        batch.push((async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: ports[k % ports.length] });
          const user = new BenchUser(`u${k}`, conn, onMessage);
          all.push(user);
          const answer = await user.ask(`/name u${k}`);
          if (answer !== `ok name u${k}`) {
            throw new LessonError(
              `u${k} did not get its name: ${answer} (out of file descriptors? raise ` +
                "ulimit -n, or try fewer --users)",
            );
          }
        })());
      }
      await Promise.all(batch);
    }
    // Every server must know every user before the clock starts.
    for (const port of ports) {
      const probe = all.find((user) => user.conn.remoteAddr.port === port)!;
      const deadline = Date.now() + 20_000;
      // `users TOTAL NAME …`: TOTAL counts everyone (the names come 100 at a time).
      while (Number((await probe.ask("/users")).split(" ")[1]) !== users) {
        if (Date.now() > deadline) {
          throw new LessonError(
            `the server on port ${port} still does not list every user after 20 s ` +
              "(Redis too slow, or lost? try fewer --users)",
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const pick = random(42);
    let nextId = 0;
    const start = performance.now();
    await Promise.all(all.map(async (user, index) => {
      for (let m = 0; m < messages; m++) {
        let to = Math.floor(pick() * (users - 1));
        if (to >= index) to++; // anyone but oneself
        const id = nextId++;
        intended.set(id, `u${to}`);
        const answer = await user.ask(`/to u${to} ${id} ${performance.now()}`);
        if (answer !== `ok sent u${to}`) {
          throw new LessonError(
            `${user.name}'s message to u${to} was not sent: ${answer} (the machine too busy? ` +
              "try fewer --users or --messages)",
          );
        }
      }
    }));
    // Wait for the last deliveries: until all arrived, or nothing came for 2 s.
    const sent = nextId;
    while (received.size < sent && performance.now() - lastDelivery < 2_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const delivered = [...received.values()].reduce((sum, n) => sum + n, 0);
    return {
      perSecond: received.size / ((lastDelivery - start) / 1000),
      p50: latencies.percentile(50),
      p99: latencies.percentile(99),
      sent,
      delivered,
      lost: sent - received.size,
      duplicates: delivered - received.size,
      misdelivered,
    };
  } finally {
    for (const user of all) {
      try {
        user.conn.close();
      } catch { /* closed */ }
    }
    await Promise.all(all.map((user) => user.reading));
  }
}

const median = (values: number[]) =>
  values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)];

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 20,
    role: "client",
    task: "lesson20-bench",
    hostPort: false,
    summary: "Measures the chat through Redis (two lesson 20 servers) against one lesson 12 " +
      "server, with the same load, and prints a markdown table.",
    flags: {
      users: { type: "number", description: "users in all", default: 1000, min: 2, max: 5000 },
      messages: { type: "number", description: "messages each user sends", default: 20, min: 1 },
      reps: { type: "number", description: "runs of each setup", default: 3, min: 1, max: 20 },
    },
  });
  const rows: Record<string, Result[]> = {
    "one lesson 12 server": [],
    "two lesson 20 servers + Redis": [],
  };
  for (let rep = 1; rep <= flags.reps; rep++) {
    // The reference: one process holds everyone.
    const single = await startServer("lesson12-server", [
      "--port",
      "0",
      "--max-connections",
      "10000",
    ]);
    try {
      rows["one lesson 12 server"].push(await runLoad([single.port], flags.users, flags.messages));
    } finally {
      await single.process.stop("SIGTERM");
    }
    // The same load over two servers and a broker.
    const started: ChildProgram[] = [];
    try {
      const redis = await startRedis();
      started.push(redis.process);
      const ports = [];
      for (let i = 0; i < 2; i++) {
        const server = await startServer("lesson20-server", [
          "--port",
          "0",
          "--redis",
          redis.url,
          "--max-connections",
          "10000",
        ]);
        started.push(server.process);
        await server.process.waitForLine(/^redis: connected/, 5_000);
        ports.push(server.port);
      }
      rows["two lesson 20 servers + Redis"].push(await runLoad(ports, flags.users, flags.messages));
    } finally {
      for (const child of started.reverse()) await child.stop("SIGTERM");
    }
    console.error(`run ${rep} of ${flags.reps} done`);
  }
  console.log(
    `${flags.users} users, ${flags.messages} messages each to random others, ` +
      `one at a time; medians of ${flags.reps} runs\n`,
  );
  console.log(
    "| setup | messages/s | p50 latency | p99 latency | sent | lost | duplicates | to the wrong user |",
  );
  console.log(
    "| ----- | ---------: | ----------: | ----------: | ---: | ---: | ---------: | ----------------: |",
  );
  for (const [name, results] of Object.entries(rows)) {
    const m = (key: keyof Result) => median(results.map((result) => result[key]));
    // Lost, duplicates, wrong user: the sum over all runs, not a median (one is too many).
    const sum = (key: keyof Result) => results.reduce((total, result) => total + result[key], 0);
    console.log(
      `| ${name} | ${Math.round(m("perSecond")).toLocaleString("en-US")} | ` +
        `${m("p50").toFixed(1)} ms | ${m("p99").toFixed(1)} ms | ${m("sent")} | ${sum("lost")} | ` +
        `${sum("duplicates")} | ${sum("misdelivered")} |`,
    );
  }
});
