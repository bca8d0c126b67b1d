/**
 * Lesson 13's page server under the two attacks of issue 17 (items 3 and 4),
 * at full size. The tests (tests/lesson13_test.ts) run them scaled down.
 *
 * - `hold`: the server runs under `prlimit --nofile=1024`; 1,500 connections
 *   are opened to the page port and held (half of them idle, half with a
 *   request head sent halfway). Is the server still alive? When they close,
 *   does the page load, and do two WebSocket users chat?
 * - `idle`: 500 connections to the page port (half idle, half with half a
 *   request head, then a byte every second): how many has the server
 *   closed after 15 s?
 * - `big`: ten WebSockets each send one 60 MiB text message at once. How far
 *   does the server's memory (RSS) grow?
 *
 * ```sh
 * deno task lesson13-attack                 # both, against this checkout
 * deno task lesson13-attack --only big      # one of them
 * deno task lesson13-attack --repo ../old   # against another checkout (before/after)
 * ```
 *
 * @module
 */
import { parseFlags, runMain, UsageError } from "../lib/mod.ts";

const parse = () =>
  parseFlags(Deno.args, {
    lesson: 13,
    role: "client",
    task: "lesson13-attack",
    hostPort: false,
    summary: "Lesson 13's page server under two attacks, at full size: " +
      "hold (1,500 connections under prlimit --nofile=1024), idle (500 idle or slow heads), " +
      "big (ten 60 MiB WebSocket messages).",
    flags: {
      only: { type: "string", description: "run one attack: hold, idle or big", value: "NAME" },
      repo: {
        type: "string",
        description: "the checkout whose lesson13-server is attacked (before/after)",
        default: ".",
        value: "DIR",
      },
      connections: {
        type: "number",
        description: "hold: connections held open",
        default: 1500,
        min: 1,
        value: "N",
      },
      messages: {
        type: "number",
        description: "big: WebSocket messages at once",
        default: 10,
        min: 1,
        value: "N",
      },
      mib: {
        type: "number",
        description: "big: the size of each message",
        default: 60,
        min: 1,
        value: "MIB",
      },
    },
  });
let args!: ReturnType<typeof parse>;
// A bad flag is one line and exit 2 (runMain), not a stack trace.
await runMain(() => {
  args = parse();
  if (args.only !== undefined && !["hold", "idle", "big"].includes(args.only)) {
    throw new UsageError(`--only must be hold, idle or big, got "${args.only}"`);
  }
});
const repo = args.repo;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** lesson13-server from `repo`, on free ports, maybe under prlimit. */
class Server {
  child: Deno.ChildProcess;
  out = "";
  exited = false;
  status: Promise<Deno.CommandStatus>;
  #reading: Promise<void>;

  constructor(nofile?: number) {
    const deno = [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1,localhost,[::1]",
      `--allow-read=${repo}/lessons/13-browser-chat/page`,
      `${repo}/lessons/13-browser-chat/server.ts`,
      "--port",
      "0",
    ];
    this.child = new Deno.Command(nofile ? "prlimit" : "deno", {
      args: nofile ? [`--nofile=${nofile}`, "deno", ...deno] : deno,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.child.status.then((status) => {
      this.exited = true;
      return status;
    });
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.out += text;
    };
    this.#reading = Promise.all([collect(this.child.stdout), collect(this.child.stderr)])
      .then(() => {});
  }

  async page(): Promise<number> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const match = this.out.match(/^page at http:\/\/127\.0\.0\.1:(\d+)\/$/m);
      if (match) return Number(match[1]);
      await sleep(50);
    }
    throw new Error(`the server did not start:\n${this.out}`);
  }

  async rssMiB(): Promise<number> {
    const ps = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(this.child.pid)] })
      .output();
    return Number(decoder.decode(ps.stdout).trim()) / 1024;
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.status;
    await this.#reading;
  }
}

/** Opens a WebSocket by hand; returns the connection once the server answered 101. */
async function rawWebSocket(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    "GET /ws HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    `Origin: http://127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
  ].join("\r\n") + "\r\n\r\n";
  await conn.write(encoder.encode(head));
  let answer = "";
  const byte = new Uint8Array(1);
  while (!answer.endsWith("\r\n\r\n")) {
    if (await conn.read(byte) === null) break;
    answer += decoder.decode(byte);
  }
  if (!answer.startsWith("HTTP/1.1 101")) throw new Error(`no 101: ${answer.split("\r\n")[0]}`);
  return conn;
}

/** The page loads, and two WebSocket users chat. */
async function pageAndChat(port: number): Promise<string> {
  const page = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(10_000) });
  const body = await page.text();
  if (page.status !== 200 || !body.includes("app.js")) return `page: ${page.status}`;
  const open = (name: string) =>
    new Promise<{ socket: WebSocket; next: () => Promise<string> }>((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
        headers: { origin: `http://127.0.0.1:${port}` },
      });
      const queue: string[] = [];
      const waiting: ((line: string) => void)[] = [];
      socket.onmessage = (event) => {
        const line = String(event.data);
        if (line.startsWith("users") || line.startsWith("joined")) return;
        const wake = waiting.shift();
        if (wake) wake(line);
        else queue.push(line);
      };
      socket.onerror = () => reject(new Error("the WebSocket failed"));
      const next = () =>
        queue.length > 0 ? Promise.resolve(queue.shift()!) : Promise.race([
          new Promise<string>((resolve) => waiting.push(resolve)),
          sleep(10_000).then(() => "(nothing in 10 s)"),
        ]);
      socket.onopen = () => {
        socket.send(`/name ${name}`);
        resolve({ socket, next });
      };
    });
  const a = await open("probe_a");
  const b = await open("probe_b");
  const answers = [await a.next(), await b.next()];
  a.socket.send("/to probe_b hello");
  answers.push(await a.next(), await b.next());
  a.socket.close();
  b.socket.close();
  return answers.join(" | ");
}

async function hold(): Promise<void> {
  const count = args.connections;
  console.log(`# hold: ${count} connections to the page port, server under prlimit --nofile=1024`);
  const server = new Server(1024);
  try {
    const port = await server.page();
    const conns: Deno.TcpConn[] = [];
    let failed = 0;
    const started = Date.now();
    for (let i = 0; i < count && !server.exited; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        // Half of them send half a request head, and never the rest.
        if (i % 2 === 1) {
          conn.write(encoder.encode(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`))
            .catch(() => {});
        }
      } catch {
        failed++;
      }
    }
    console.log(`opened ${conns.length} (${failed} failed) in ${Date.now() - started} ms`);
    await sleep(3_000);
    console.log(`after 3 s: the server is ${server.exited ? "DEAD" : "alive"}`);
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed by the server */ }
    }
    await sleep(1_000);
    if (!server.exited) {
      const chat = await pageAndChat(port).catch((error) => `failed: ${error.message}`);
      console.log(`when they are closed: ${chat}`);
    }
  } finally {
    await server.stop();
    const lines = server.out.split("\n").filter((line) => line !== "");
    console.log(`the server's output (${lines.length} lines), first 12:`);
    for (const line of lines.slice(0, 12)) console.log(`  ${line.slice(0, 200)}`);
  }
}

async function idle(): Promise<void> {
  const count = 500;
  console.log(`# idle: ${count} connections to the page port, half idle, half sending slowly`);
  const server = new Server();
  const conns: Deno.TcpConn[] = [];
  try {
    const port = await server.page();
    let closed = 0;
    for (let i = 0; i < count; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      // Counted as closed when the server ends it (EOF, or a reset).
      conn.read(new Uint8Array(1024)).then(() => closed++, () => closed++);
      if (i % 2 === 1) {
        conn.write(encoder.encode(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `))
          .catch(() => {});
      }
    }
    for (let second = 1; second <= 15; second++) {
      await sleep(1_000);
      for (const [i, conn] of conns.entries()) {
        if (i % 2 === 1) conn.write(encoder.encode("a")).catch(() => {});
      }
      if (second % 5 === 0) {
        console.log(`after ${second} s: ${closed} of ${count} closed by the server`);
      }
    }
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await server.stop();
  }
}

async function big(): Promise<void> {
  const count = args.messages;
  const mib = args.mib;
  console.log(`# big: ${count} WebSockets each send one ${mib} MiB text message at once`);
  const server = new Server();
  try {
    const port = await server.page();
    const conns = await Promise.all(Array.from({ length: count }, () => rawWebSocket(port)));
    await sleep(500);
    const before = await server.rssMiB();
    let peak = before;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await server.rssMiB().catch(() => 0));
        await sleep(50);
      }
    })();
    const length = mib * 1024 * 1024;
    const started = Date.now();
    const results = await Promise.all(conns.map(async (conn) => {
      // A masked text frame (mask 0: the payload goes as it is) with a 64-bit length.
      const header = new Uint8Array(14);
      header[0] = 0x81;
      header[1] = 0x80 | 127;
      new DataView(header.buffer).setBigUint64(2, BigInt(length));
      const reading = (async () => {
        const chunks: Uint8Array[] = [];
        const buffer = new Uint8Array(4096);
        try {
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            chunks.push(buffer.slice(0, n));
          }
        } catch { /* reset */ }
        return chunks;
      })();
      let sent = 0;
      try {
        await conn.write(header);
        const chunk = new Uint8Array(1024 * 1024).fill(0x61);
        while (sent < length) sent += await conn.write(chunk.subarray(0, length - sent));
      } catch { /* the server closed */ }
      const timer = setTimeout(() => conn.close(), 15_000);
      const chunks = await reading;
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed */ }
      const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) bytes.set(c, at), at += c.length;
      // The server's frames: find the close frame (0x88) and its code.
      let answer = `sent ${(sent / 1048576).toFixed(1)} MiB`;
      for (let i = 0; i + 1 < bytes.length;) {
        const op = bytes[i] & 0x0f;
        let len = bytes[i + 1] & 0x7f;
        let start = i + 2;
        if (len === 126) len = (bytes[i + 2] << 8) | bytes[i + 3], start = i + 4;
        const payload = bytes.subarray(start, start + len);
        if (op === 1) answer += `, "${decoder.decode(payload)}"`;
        if (op === 8 && payload.length >= 2) answer += `, close ${(payload[0] << 8) | payload[1]}`;
        i = start + len;
      }
      return answer;
    }));
    const elapsed = Date.now() - started;
    await sleep(2_000);
    const after = await server.rssMiB();
    sampling = false;
    await sampler;
    console.log(`answers: ${[...new Set(results)].join(" / ")}`);
    console.log(
      `RSS before ${before.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB (+${
        (peak - before).toFixed(0)
      }), 2 s after ${after.toFixed(0)} MiB (+${(after - before).toFixed(0)}); ${elapsed} ms`,
    );
    console.log(`the server is ${server.exited ? "DEAD" : "alive"}`);
  } finally {
    await server.stop();
  }
}

if (args.only === undefined || args.only === "hold") await hold();
if (args.only === undefined || args.only === "idle") await idle();
if (args.only === undefined || args.only === "big") await big();
