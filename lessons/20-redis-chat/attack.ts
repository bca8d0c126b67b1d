/**
 * `deno task lesson20-attack`: what users on one server can do to users on
 * another, measured.
 *
 * Starts Redis and two lesson 20 servers, A and B, then one of two attacks:
 *
 * - `--attack rename` (the default): `--readers` users (100) on B who read
 *   everything, and one client on A that changes its name `--rate` times a
 *   second (each change is a `left` and a `joined` for every user on B).
 * - `--attack to`: bob on B and alice on A, who both read everything, and
 *   mallory on A, who sends `--messages` (1,000) `/to bob <4 KB>` and as
 *   many to alice, as fast as A takes them.
 *
 * For `--seconds` (8) it watches B's memory (`ps`), and prints how many of
 * the readers were cut off, how many lines they got, and B's largest RSS.
 * A user who reads must never be cut off because of what others send.
 */
import { LineDecoder, parseFlags, runMain, writeAll } from "../../lib/mod.ts";
import { ChildProgram, startRedis, startServer } from "./cluster.ts";

const encoder = new TextEncoder();

/** A user who reads everything as fast as it comes, and counts it. */
class Reader {
  lines = 0;
  from = 0;
  /** `from [server] ...` lines (e.g. how many messages were dropped). */
  notices: string[] = [];
  /** The line that ended it (`error slow-reader ...`), or "closed". */
  cutOff: string | undefined;
  /** Called with every line (the latency probe). */
  onLine: ((line: string) => void) | undefined;
  #decoder = new LineDecoder(1 << 16);
  #waiting: ((line: string) => void) | undefined;
  readonly reading: Promise<void>;

  constructor(readonly conn: Deno.TcpConn) {
    this.reading = (async () => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          for (const line of this.#decoder.push(buffer.subarray(0, n))) {
            this.lines++;
            this.onLine?.(line);
            if (line.startsWith("from [server] ")) this.notices.push(line);
            else if (line.startsWith("from ")) this.from++;
            if (line.startsWith("error slow-reader")) this.cutOff = line;
            if (line.startsWith("ok ") || line.startsWith("error ")) this.#waiting?.(line);
          }
        }
      } catch { /* closed */ }
      this.cutOff ??= "closed";
    })();
  }

  static async connect(port: number, name: string): Promise<Reader> {
    const reader = new Reader(await Deno.connect({ hostname: "127.0.0.1", port }));
    const answer = await reader.ask(`/name ${name}`);
    if (answer !== `ok name ${name}`) throw new Error(`${name}: ${answer}`);
    return reader;
  }

  async ask(line: string): Promise<string> {
    const answer = new Promise<string>((resolve) => this.#waiting = resolve);
    await writeAll(this.conn, encoder.encode(line + "\n"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const got = await Promise.race([
      answer,
      new Promise<string>((resolve) => timer = setTimeout(() => resolve("(no answer)"), 10_000)),
    ]);
    clearTimeout(timer);
    return got;
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** The resident memory of process `pid`, in MiB (0 if it is gone). */
async function rssMiB(pid: number): Promise<number> {
  const output = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] })
    .output();
  return Number(new TextDecoder().decode(output.stdout).trim() || 0) / 1024;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 20,
    role: "client",
    task: "lesson20-attack",
    hostPort: false,
    summary: "Attacks the users of one lesson 20 server from another (renames, or /to " +
      "floods) and reports who was cut off and how much memory it took.",
    flags: {
      attack: {
        type: "string",
        description: "rename: one client on A renames itself --rate times a second; " +
          "to: mallory on A floods bob on B (and alice on A) with 4 KB messages",
        default: "rename",
        value: "rename|to",
      },
      readers: { type: "number", description: "reading users on B (rename)", default: 100, min: 1 },
      rate: { type: "number", description: "renames a second (rename)", default: 100, min: 1 },
      messages: { type: "number", description: "messages to each (to)", default: 1000, min: 1 },
      seconds: { type: "number", description: "how long the attack runs", default: 8, min: 1 },
    },
  });
  if (flags.attack !== "rename" && flags.attack !== "to") {
    throw new Error(`--attack is rename or to, got ${flags.attack}`);
  }
  const started: ChildProgram[] = [];
  const users: Reader[] = [];
  try {
    const redis = await startRedis();
    started.push(redis.process);
    const servers = [];
    for (const name of ["A", "B"]) {
      const server = await startServer("lesson20-server", [
        "--port",
        "0",
        "--redis",
        redis.url,
        "--max-connections",
        "10000",
      ], (line) => {
        if (!/ (joined|left)|^redis: connected|more events/.test(line)) {
          console.error(`[${name}] ${line}`);
        }
      });
      started.push(server.process);
      await server.process.waitForLine(/^redis: connected/, 5_000);
      servers.push(server);
    }
    const [a, b] = servers;
    const before = await rssMiB(b.process.pid);
    let peak = before;
    const watching = (async () => {
      const end = Date.now() + flags.seconds * 1000 + 2_000;
      while (Date.now() < end) {
        peak = Math.max(peak, await rssMiB(b.process.pid));
        await sleep(200);
      }
    })();

    if (flags.attack === "rename") {
      for (let i = 0; i < flags.readers; i++) users.push(await Reader.connect(b.port, `r${i}`));
      // A probe between two readers on B: how long a message from one to the other takes.
      const latencies: number[] = [];
      users[1].onLine = (line) => {
        const at = line.match(/^from r0 probe (\S+)$/)?.[1];
        if (at !== undefined) latencies.push(performance.now() - Number(at));
      };
      const renamer = new Reader(await Deno.connect({ hostname: "127.0.0.1", port: a.port }));
      users.push(renamer);
      const end = Date.now() + flags.seconds * 1000;
      let sent = 0;
      const startedAt = Date.now();
      while (Date.now() < end && renamer.cutOff === undefined) {
        const due = Math.floor((Date.now() - startedAt) / 1000 * flags.rate);
        const lines = [];
        for (; sent < due; sent++) lines.push(`/name x${sent}`);
        if (lines.length > 0) await writeAll(renamer.conn, encoder.encode(lines.join("\n") + "\n"));
        if (sent % 20 === 0 || flags.rate > 100) {
          await writeAll(users[0].conn, encoder.encode(`/to r1 probe ${performance.now()}\n`));
        }
        await sleep(10);
      }
      await sleep(2_000); // what is still on its way
      const readers = users.slice(0, flags.readers);
      const cut = readers.filter((reader) => reader.cutOff !== undefined);
      const lines = readers.map((reader) => reader.lines).sort((x, y) => x - y);
      latencies.sort((x, y) => x - y);
      const probe = latencies.length === 0
        ? "no probe message arrived"
        : `a message between two readers on B took ${
          latencies[Math.floor(latencies.length / 2)].toFixed(0)
        } ms (median of ${latencies.length}), ${latencies.at(-1)!.toFixed(0)} ms at most`;
      console.log(
        `rename: ${sent} renames on A in ${flags.seconds} s; of ${flags.readers} readers on B, ` +
          `${cut.length} cut off${cut[0] ? ` (${cut[0].cutOff})` : ""}; lines per reader: ` +
          `min ${lines[0]}, max ${lines.at(-1)}; B's RSS ${before.toFixed(0)} MiB before, ` +
          `${peak.toFixed(0)} MiB at most; ${probe}`,
      );
    } else {
      const alice = await Reader.connect(a.port, "alice");
      const bob = await Reader.connect(b.port, "bob");
      const mallory = await Reader.connect(a.port, "mallory");
      users.push(alice, bob, mallory);
      await sleep(300); // bob's `joined` reaches A
      const text = "x".repeat(4000);
      const lines = [];
      for (let i = 0; i < flags.messages; i++) {
        lines.push(`/to bob ${i} ${text}`, `/to alice ${i} ${text}`);
      }
      const sending = writeAll(mallory.conn, encoder.encode(lines.join("\n") + "\n"))
        .catch(() => {});
      const end = Date.now() + flags.seconds * 1000;
      while (
        Date.now() < end &&
        (alice.from < flags.messages || bob.from < flags.messages) &&
        (bob.cutOff === undefined || alice.cutOff === undefined)
      ) await sleep(50);
      mallory.close();
      await sending;
      await sleep(500);
      const say = (name: string, reader: Reader) =>
        `${name} got ${reader.from} of ${flags.messages}` +
        (reader.notices.length ? ` and was told: ${reader.notices.join(" / ")}` : "") +
        (reader.cutOff ? ` and was cut off (${reader.cutOff})` : "");
      console.log(
        `to: mallory on A sent ${flags.messages} 4 KB messages to each; ${
          say("alice (A)", alice)
        }; ` +
          `${say("bob (B)", bob)}; B's RSS ${before.toFixed(0)} MiB before, ` +
          `${peak.toFixed(0)} MiB at most`,
      );
    }
    await watching;
  } finally {
    users.forEach((user) => user.close());
    await Promise.all(users.map((user) => user.reading));
    for (const child of started.reverse()) await child.stop("SIGTERM");
  }
});
