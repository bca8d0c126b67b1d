/**
 * Lesson 13 without a browser: the web server, the Origin check, and the
 * gateway's relaying and limits, driven by WebSocket and raw TCP clients.
 * (tests/lesson13_browser_test.ts drives the page in a real browser.)
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { LineDecoder } from "../lib/lines.ts";
import { ChildProgram } from "../lessons/20-redis-chat/cluster.ts";
import { taskArgs } from "../tools/lesson_process.ts";
import {
  closedPort,
  closeRaw,
  decode,
  encode,
  LessonServer,
  rawConnect,
  readExactly,
  readToEnd,
  runTask,
  sleep,
} from "./_helpers.ts";
import { RawServer } from "./_raw_server.ts";
import { RedisChatServers, skipWithoutRedis } from "./_redis.ts";

/** Starts lesson13-server on free ports; returns it and its page's port. */
async function start(args: string[] = []): Promise<{ server: LessonServer; http: number }> {
  const server = await LessonServer.start("lesson13-server", args);
  assert(
    await server.waitForLine(/^page at http:\/\/127\.0\.0\.1:\d+\/$/),
    server.lines.join("\n"),
  );
  const page = server.lines.find((line) => line.startsWith("page at "))!;
  return { server, http: Number(page.match(/:(\d+)\/$/)![1]) };
}

/**
 * Starts `lesson13-server --chat CHAT` on a free page port: the page and the
 * gateway, no chat server of its own (so no `listening on` line to wait for).
 */
async function startGateway(
  chat: string,
  args: string[] = [],
): Promise<{ gateway: ChildProgram; http: number }> {
  const gateway = new ChildProgram("deno", [
    ...taskArgs("lesson13-server"),
    "--http-port",
    "0",
    "--chat",
    chat,
    ...args,
  ]);
  const page = await gateway.waitForLine(/^page at http:\/\/127\.0\.0\.1:\d+\/$/, 20_000);
  if (page === undefined) {
    await gateway.stop("SIGKILL");
    throw new Error(`lesson13-server --chat did not start:\n${gateway.lines.join("\n")}`);
  }
  return { gateway, http: Number(page.match(/:(\d+)\/$/)![1]) };
}

/** A WebSocket client that reads the server's messages one at a time. */
class Socket {
  #socket: WebSocket;
  #messages: (string | null)[] = [];
  #wake: (() => void) | undefined;
  closed: Promise<CloseEvent>;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => this.#push(String(event.data));
    this.closed = new Promise((resolve) =>
      socket.onclose = (event) => {
        this.#push(null);
        resolve(event);
      }
    );
  }

  #push(message: string | null) {
    this.#messages.push(message);
    this.#wake?.();
  }

  /** Opens a WebSocket to the gateway with the page's own Origin (or `origin`). */
  static async open(http: number, origin = `http://127.0.0.1:${http}`): Promise<Socket> {
    const socket = new WebSocket(`ws://127.0.0.1:${http}/ws`, { headers: { origin } });
    const client = new Socket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("the WebSocket did not open"));
    });
    return client;
  }

  /** Joins with `name` and checks the answer. */
  static async join(http: number, name: string): Promise<Socket> {
    const client = await Socket.open(http);
    assertEquals(await client.ask(`/name ${name}`), `ok name ${name}`);
    return client;
  }

  send(data: string | Uint8Array): void {
    this.#socket.send(data);
  }

  /** The next message, or null once closed (at most 10 s). */
  async next(): Promise<string | null> {
    const deadline = Date.now() + 10_000;
    while (this.#messages.length === 0) {
      if (Date.now() > deadline) throw new Error("no WebSocket message within 10 s");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, 1_000);
      });
      clearTimeout(timer);
    }
    return this.#messages.shift()!;
  }

  async ask(message: string | Uint8Array): Promise<string | null> {
    this.send(message);
    return await this.next();
  }

  async close(): Promise<void> {
    if (this.#socket.readyState <= WebSocket.OPEN) this.#socket.close();
    await this.closed;
  }
}

/** A terminal-side chat user on a raw TCP socket (as in lesson 12's test). */
class User {
  #decoder = new LineDecoder(1 << 20);
  #lines: string[] = [];
  #buffer = new Uint8Array(64 * 1024);
  constructor(readonly conn: Deno.TcpConn) {}

  static async join(port: number, name: string): Promise<User> {
    const user = new User(await rawConnect(port));
    assertEquals(await user.ask(`/name ${name}`), `ok name ${name}`);
    return user;
  }

  send(text: string): Promise<void> {
    return writeAll(this.conn, encode(text));
  }

  async next(): Promise<string | null> {
    while (this.#lines.length === 0) {
      const n = await readWithTimeout(this.conn, this.#buffer, 10_000, "the server");
      if (n === null) return null;
      this.#lines.push(...this.#decoder.push(this.#buffer.subarray(0, n)));
    }
    return this.#lines.shift()!;
  }

  async ask(line: string): Promise<string | null> {
    await this.send(line + "\n");
    return await this.next();
  }

  close(): void {
    closeRaw(this.conn);
  }
}

/** Sends a WebSocket upgrade by hand; returns the connection and the status line. */
async function upgrade(
  http: number,
  headers: Record<string, string>,
): Promise<{ conn: Deno.TcpConn; status: string }> {
  const conn = await rawConnect(http);
  const lines = [
    "GET /ws HTTP/1.1",
    `Host: 127.0.0.1:${http}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  await writeAll(conn, encode(lines.join("\r\n") + "\r\n\r\n"));
  // Read the answer's head, byte by byte, so nothing after it is consumed.
  let head = "";
  const byte = new Uint8Array(1);
  while (!head.endsWith("\r\n\r\n") && head.length < 4096) {
    if (await readWithTimeout(conn, byte, 10_000, "the server") === null) break;
    head += decode(byte);
  }
  return { conn, status: head.split("\r\n")[0] };
}

/** A client-to-server WebSocket text frame (masked, as RFC 6455 requires of clients). */
function textFrame(text: string): Uint8Array {
  const payload = encode(text);
  assert(payload.length < 126);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  return new Uint8Array([
    0x81,
    0x80 | payload.length,
    ...mask,
    ...payload.map((byte, i) => byte ^ mask[i % 4]),
  ]);
}

Deno.test("lesson 13: the page, its headers, and nothing else", async () => {
  const { server, http } = await start();
  try {
    const page = await fetch(`http://127.0.0.1:${http}/`);
    assertEquals(page.status, 200);
    assertEquals(page.headers.get("content-type"), "text/html; charset=utf-8");
    assertStringIncludes(page.headers.get("content-security-policy")!, "script-src 'self'");
    assertEquals(page.headers.get("x-content-type-options"), "nosniff");
    assertStringIncludes(await page.text(), '<script type="module" src="/app.js"></script>');

    // app.ts, served as JavaScript: the types are blanked out, the code is the same.
    const app = await fetch(`http://127.0.0.1:${http}/app.js`);
    assertEquals(app.headers.get("content-type"), "text/javascript; charset=utf-8");
    const js = await app.text();
    const ts = await Deno.readTextFile(
      new URL("../lessons/13-browser-chat/page/app.ts", import.meta.url),
    );
    assertEquals(js.split("\n").length, ts.split("\n").length);
    assertStringIncludes(js, "function splitFirst(text        )");
    assert(!js.includes("interface Message"), "the types are still there");

    const css = await fetch(`http://127.0.0.1:${http}/style.css`);
    assertEquals([css.status, css.headers.get("content-type")], [200, "text/css; charset=utf-8"]);
    await css.body?.cancel();
    const missing = await fetch(`http://127.0.0.1:${http}/../../deno.json`);
    assertEquals([missing.status, await missing.text()], [404, "not found\n"]);
    const post = await fetch(`http://127.0.0.1:${http}/`, { method: "POST", body: "x" });
    assertEquals([post.status, await post.text()], [405, "only GET and HEAD\n"]);
    const plain = await fetch(`http://127.0.0.1:${http}/ws`);
    assertEquals(plain.status, 426);
    await plain.body?.cancel();
  } finally {
    await server.stop();
  }
});

Deno.test("lesson 13: only the page's own Origin may open a WebSocket", async () => {
  const { server, http } = await start();
  const conns: Deno.TcpConn[] = [];
  try {
    for (
      const [origin, status] of [
        [`http://127.0.0.1:${http}`, "HTTP/1.1 101 Switching Protocols"],
        [`http://localhost:${http}`, "HTTP/1.1 101 Switching Protocols"],
        ["http://evil.example", "HTTP/1.1 403 Forbidden"],
        [`http://127.0.0.1:${http + 1}`, "HTTP/1.1 403 Forbidden"],
        [`https://127.0.0.1:${http}`, "HTTP/1.1 403 Forbidden"],
        ["null", "HTTP/1.1 403 Forbidden"],
        [undefined, "HTTP/1.1 403 Forbidden"],
      ] as const
    ) {
      const answer = await upgrade(http, origin === undefined ? {} : { Origin: origin });
      conns.push(answer.conn);
      assertEquals(answer.status, status, `Origin: ${origin}`);
    }
    assert(
      await server.waitForLine(
        /^refused a WebSocket from 127\.0\.0\.1:\d+: origin "http:\/\/evil\.example"$/,
      ),
    );
    assert(
      await server.waitForLine(/^refused a WebSocket from 127\.0\.0\.1:\d+: origin "\(none\)"$/),
    );
    // The browser's own API gets the same answer.
    const refused = await Socket.open(http, "http://evil.example").then(
      () => "open",
      (e) => e.message,
    );
    assertEquals(refused, "the WebSocket did not open");
  } finally {
    conns.forEach(closeRaw);
    await server.stop();
  }
});

Deno.test("lesson 13: WebSocket and terminal users chat through the gateway", async () => {
  const { server, http } = await start();
  let tcp: User | undefined;
  let web: Socket | undefined;
  try {
    tcp = await User.join(server.port, "tcp");
    web = await Socket.join(http, "web");
    assertEquals(await tcp.next(), "joined web");
    // Lines go through unchanged, both ways.
    assertEquals(await web.ask("/users"), "users 2 tcp web");
    assertEquals(await web.ask("/to tcp hi from the browser"), "ok sent tcp");
    assertEquals(await tcp.next(), "from web hi from the browser");
    assertEquals(await tcp.ask("/to web hi back 🌮"), "ok sent web");
    assertEquals(await web.next(), "from tcp hi back 🌮");
    assertEquals(await web.ask("/chat tcp"), "ok chat tcp");

    // One message is one line: a line break is refused, never split into two commands.
    assertEquals(
      await web.ask("hello\n/to tcp injected"),
      "error line-break a message is one line: no CR or LF in it",
    );
    assertEquals(
      await web.ask("hello\r"),
      "error line-break a message is one line: no CR or LF in it",
    );
    assertEquals(
      await web.ask(encode("/users")),
      "error not-text send text messages: one message is one line",
    );
    // Lesson 12's limit holds: 4,096 bytes in a line, not one more.
    const longest = "é".repeat(2048);
    assertEquals(await web.ask(longest), "ok sent tcp");
    assertEquals(await tcp.next(), `from web ${longest}`);
    // One byte more: the frame's header already says so. The answer, then
    // the close (1009, too big): a WebSocket cannot skip a message unread.
    const unnamed = await Socket.open(http);
    assertEquals(
      await unnamed.ask(longest + "x"),
      "error line-too-long lines are at most 4096 bytes",
    );
    assertEquals(await unnamed.next(), null);
    const closed = await unnamed.closed;
    assertEquals([closed.code, closed.reason], [1009, "messages are at most 4096 bytes"]);
    assertEquals(await web.ask("after"), "ok sent tcp");
    assertEquals(await tcp.next(), "from web after"); // nothing else reached tcp

    // The terminal client, pointed at lesson 13's chat port, sees the browser user.
    const client = await runTask("lesson13-client", [
      "--port",
      String(server.port),
      "--name",
      "term",
    ], {
      stdin: "/users\n/to web hello from the terminal client\n",
    });
    assertEquals([client.code, client.stderr], [0, ""]);
    assertEquals(
      client.stdout,
      "* you are term: /help lists the commands\n* here (3): tcp, term, web\n* bye\n",
    );
    assertEquals(
      [await web.next(), await web.next(), await web.next()],
      ["joined term", "from term hello from the terminal client", "left term"],
    );

    assertEquals([await tcp.next(), await tcp.next()], ["joined term", "left term"]);

    // Closing the WebSocket is hanging up: the others see `left`.
    await web.close();
    assertEquals(await tcp.next(), "left web");
    assert(await server.waitForLine("web left: hung up"));
    assert(await server.waitForLine(/^browser 127\.0\.0\.1:\d+ disconnected$/));
  } finally {
    tcp?.close();
    await web?.close();
    await server.stop();
  }
});

Deno.test("lesson 13: a browser that does not read is cut off (bufferedAmount)", async () => {
  // Thousands of lines as fast as we can: over lesson 12's flood control, so that is lifted.
  const { server, http } = await start([
    "--max-queue",
    "65536",
    "--line-burst",
    "1000000",
    "--line-rate",
    "1000000",
  ]);
  const { conn: slow, status } = await upgrade(http, { Origin: `http://127.0.0.1:${http}` });
  let talker: User | undefined;
  try {
    assertEquals(status, "HTTP/1.1 101 Switching Protocols");
    talker = await User.join(server.port, "talker");
    await writeAll(slow, textFrame("/name slow")); // and from now on, never read
    assertEquals(await talker.next(), "joined slow");
    assertEquals(await talker.ask("/chat slow"), "ok chat slow");
    const message = "m".repeat(4000);
    let sent = 0;
    let cutOff = false;
    // Batches of 50, until the gateway gives up on slow (at most 100 MB).
    while (!cutOff && sent < 25_000) {
      await talker.send(`${message}\n`.repeat(50));
      for (let answers = 0; answers < 50;) {
        const line = await talker.next();
        if (line === "left slow") {
          cutOff = true;
          continue;
        }
        answers++;
        if (line === "ok sent slow") sent++;
        else assertMatch(line ?? "EOF", /^error no-such-user slow/);
      }
    }
    assert(cutOff, `slow was never cut off after ${sent} messages`);
    // The gateway stopped reading for slow, so the chat server's queue for it
    // filled, and lesson 12's rule cut it off. What was sent before that sits in
    // kernel buffers (megabytes on loopback), the gateway and the chat (--max-queue each).
    assert(await server.waitForLine("slow left: too slow to read"));
    assert(sent * 4000 < 50_000_000, `${sent} messages before the cut-off`);
    assertEquals(await talker.ask("/users"), "users 1 talker");
  } finally {
    talker?.close();
    closeRaw(slow);
    await server.stop();
  }
});

Deno.test("lesson 13: a burst to a browser that reads is all delivered", async () => {
  const { server, http } = await start(["--max-queue", "65536"]);
  const fast = await Socket.join(http, "fast");
  let talker: User | undefined;
  try {
    talker = await User.join(server.port, "talker");
    assertEquals(await fast.next(), "joined talker");
    // 800 KB at once, over ten times --max-queue: the gateway waits for the
    // browser to take it (bufferedAmount), it does not cut a reader off.
    const messages = Array.from({ length: 200 }, (_, i) => `${i} ${"m".repeat(4000)}`);
    await talker.send(`/chat fast\n${messages.join("\n")}\n`);
    for (const message of messages) assertEquals(await fast.next(), `from talker ${message}`);
    assertEquals(await talker.next(), "ok chat fast");
    for (let i = 0; i < 200; i++) assertEquals(await talker.next(), "ok sent fast");
  } finally {
    talker?.close();
    await fast.close();
    await server.stop();
  }
});

Deno.test("lesson 13: --max-connections bounds the WebSockets too", async () => {
  const { server, http } = await start(["--max-connections", "1"]);
  const web = await Socket.join(http, "web");
  const conns: Deno.TcpConn[] = [];
  try {
    const second = await upgrade(http, { Origin: `http://127.0.0.1:${http}` });
    conns.push(second.conn);
    assertEquals(second.status, "HTTP/1.1 503 Service Unavailable");
    // A terminal user over the limit gets lesson 12's answer.
    const terminal = await rawConnect(server.port);
    conns.push(terminal);
    const busy = new Uint8Array(100);
    const n = await readWithTimeout(terminal, busy, 10_000, "the server");
    assertEquals(decode(busy.subarray(0, n ?? 0)), "server busy\n");
  } finally {
    conns.forEach(closeRaw);
    await web.close();
    await server.stop();
  }
});

Deno.test("lesson 13: a bad WebSocket handshake gets 400 and gives its place back", async () => {
  const { server, http } = await start(["--max-connections", "1"]);
  try {
    // Twice, with --max-connections 1: Upgrade headers, but no Sec-WebSocket-Key.
    for (let i = 0; i < 2; i++) {
      const conn = await rawConnect(http);
      try {
        const request = [
          "GET /ws HTTP/1.1",
          `Host: 127.0.0.1:${http}`,
          "Upgrade: websocket",
          "Connection: Upgrade, close",
          `Origin: http://127.0.0.1:${http}`,
        ];
        await writeAll(conn, encode(request.join("\r\n") + "\r\n\r\n"));
        const answer = new Uint8Array(4096);
        const n = await readWithTimeout(conn, answer, 10_000, "the server");
        const text = decode(answer.subarray(0, n ?? 0));
        assertEquals(text.split("\r\n")[0], "HTTP/1.1 400 Bad Request");
        assertStringIncludes(text, "bad WebSocket request\n");
      } finally {
        closeRaw(conn);
      }
    }
    // The one place is free: a real WebSocket still joins.
    const web = await Socket.join(http, "web");
    await web.close();
    assertEquals(server.stderr, ""); // no stack trace
  } finally {
    await server.stop();
  }
});

Deno.test("lesson 13: Ctrl-C: the browsers get bye, then the server exits 0", async () => {
  const { server, http } = await start();
  const web = await Socket.join(http, "web");
  try {
    // Twice, as a terminal's Ctrl-C under `deno task` arrives (the group, and the task).
    const stopping = server.stop("SIGINT");
    server.stop("SIGINT");
    assertEquals(await web.next(), "bye");
    assertEquals(await web.next(), null);
    const result = await stopping;
    assertEquals([result.code, result.stderr], [0, ""]);
    assertStringIncludes(result.stdout, "shutting down: 1 user connected\n");
  } finally {
    await web.close();
  }
});

Deno.test("lesson 13: --http-port in use is the usual one-line error", async () => {
  const { server, http } = await start();
  try {
    const result = await runTask("lesson13-server", ["--port", "0", "--http-port", String(http)]);
    assertEquals(result.code, 1);
    assertEquals(
      result.stderr,
      `port ${http} is already in use: is another server running? stop it, or try --http-port 0\n`,
    );
  } finally {
    await server.stop();
  }
});

const skipRedis = await skipWithoutRedis("lesson 13's tests against lesson 20");

Deno.test({
  name: "lesson 13: --chat: the page's gateway in front of two lesson 20 servers, one chat",
  ignore: skipRedis,
  async fn() {
    await using cluster = await RedisChatServers.start(2);
    const [a, b] = cluster.servers;
    const { gateway, http } = await startGateway(`127.0.0.1:${a.port}`);
    let tcp: User | undefined;
    let web: Socket | undefined;
    try {
      // No chat server of its own: it says where it relays to, and where the page is.
      assertEquals(gateway.lines, [
        `relaying to the chat server at 127.0.0.1:${a.port}`,
        `page at http://127.0.0.1:${http}/`,
      ]);
      // A browser user through the gateway (on server A), a terminal user on server B.
      tcp = await User.join(b.port, "tcp");
      web = await Socket.join(http, "web");
      assertEquals(await tcp.next(), "joined web");
      assertEquals(await web.ask("/users"), "users 2 tcp web");
      assertEquals(await tcp.ask("/users"), "users 2 tcp web");
      assertEquals(await web.ask("/to tcp hi from the browser, via A"), "ok sent tcp");
      assertEquals(await tcp.next(), "from web hi from the browser, via A");
      assertEquals(await tcp.ask("/to web hi back from B 🌮"), "ok sent web");
      assertEquals(await web.next(), "from tcp hi back from B 🌮");
      // The gateway's own rule holds in front of any chat server.
      assertEquals(
        await web.ask("hi\n/to tcp injected"),
        "error line-break a message is one line: no CR or LF in it",
      );
      // For server A, the browser user is the gateway's TCP connection.
      const through = await gateway.waitForLine(/^browser 127\.0\.0\.1:\d+ connected through /);
      const local = through!.match(/through (127\.0\.0\.1:\d+)$/)![1];
      assert(await a.waitForLine(`web joined from ${local}`), a.lines.join("\n"));

      // Lesson 13's terminal client, on server B, sees both.
      const client = await runTask(
        "lesson13-client",
        ["--port", String(b.port), "--name", "term"],
        {
          stdin: "/users\n/to web hello from the lesson 13 client\n",
        },
      );
      assertEquals([client.code, client.stderr], [0, ""]);
      assertEquals(
        client.stdout,
        "* you are term: /help lists the commands\n* here (3): tcp, term, web\n* bye\n",
      );
      assertEquals(
        [await web.next(), await web.next(), await web.next()],
        ["joined term", "from term hello from the lesson 13 client", "left term"],
      );
      assertEquals([await tcp.next(), await tcp.next()], ["joined term", "left term"]);

      // Ctrl-C stops the gateway, not the chat: the browser is told why,
      // and server B's user sees the browser user leave.
      const stopping = gateway.stop("SIGINT");
      assertEquals(await web.next(), null);
      const closed = await web.closed;
      assertEquals([closed.code, closed.reason], [1001, "the gateway is shutting down"]);
      assertEquals(await tcp.next(), "left web");
      assertEquals(await stopping, 0);
      assert(
        gateway.lines.includes("shutting down: 1 browser connected"),
        gateway.lines.join("\n"),
      );
      assertEquals(await tcp.ask("/users"), "users 1 tcp");
    } finally {
      tcp?.close();
      await web?.close();
      await gateway.stop("SIGKILL");
    }
  },
});

Deno.test("lesson 13: --chat to a port where nothing listens: the browser is told why", async () => {
  const port = closedPort();
  const { gateway, http } = await startGateway(`127.0.0.1:${port}`, ["--max-connections", "1"]);
  try {
    const why = `the chat server at 127.0.0.1:${port} is not answering: connection refused`;
    // Twice, with --max-connections 1: a refused WebSocket gives its place back once closed.
    for (let i = 0; i < 2; i++) {
      const web = await Socket.open(http);
      assertEquals(await web.next(), `error chat-unreachable ${why}`);
      assertEquals(await web.next(), null);
      const closed = await web.closed;
      assertEquals([closed.code, closed.reason], [1013, why]); // 1013: try again later
    }
    assertEquals(
      gateway.lines.filter((line) => line.endsWith(why)).length,
      2,
      gateway.lines.join("\n"),
    );
    assertMatch(gateway.lines.at(-1)!, /^browser 127\.0\.0\.1:\d+: the chat server at /);
    // The page is still served, so it can say so.
    const page = await fetch(`http://127.0.0.1:${http}/`);
    assertEquals(page.status, 200);
    await page.body?.cancel();
    assertEquals(await gateway.stop("SIGINT"), 0);
    assert(gateway.lines.includes("shutting down: 0 browsers connected"), gateway.lines.join("\n"));
  } finally {
    await gateway.stop("SIGKILL");
  }
});

Deno.test("lesson 13: a bad --chat is a one-line usage error", async () => {
  for (const chat of ["nope", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1"]) {
    const result = await runTask("lesson13-server", ["--chat", chat]);
    assertEquals(
      [result.code, result.stdout, result.stderr],
      [2, "", `--chat must be HOST:PORT, e.g. 127.0.0.1:65420, got ${JSON.stringify(chat)}\n`],
    );
  }
});

// Issue 17, items 3 and 4: the page port's limits, and WebSocket frames
// checked from their header. (bench/lesson13_attack.ts runs the full attacks.)

/** Reads everything until the server closes (at most 10 s); how long that took. */
async function untilClosed(conn: Deno.TcpConn): Promise<{ text: string; ms: number }> {
  const started = Date.now();
  const bytes = await readToEnd(conn, 10_000);
  return { text: decode(bytes), ms: Date.now() - started };
}

Deno.test("lesson 13: a page connection quiet too long is closed (header and keep-alive timeouts)", async () => {
  const { server, http } = await start(["--header-timeout", "0.5", "--keep-alive", "0.5"]);
  const conns: Deno.TcpConn[] = [];
  try {
    // Says nothing: closed, with no answer, after the header timeout.
    const idle = await rawConnect(http);
    conns.push(idle);
    const quiet = await untilClosed(idle);
    assertEquals(quiet.text, "");
    assert(quiet.ms >= 400 && quiet.ms < 5_000, `closed after ${quiet.ms} ms`);

    // Slowloris: half a head, then one byte every 100 ms. The head's deadline
    // counts from the start, not from the last byte.
    const slow = await rawConnect(http);
    conns.push(slow);
    await writeAll(slow, encode(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${http}\r\nX-Slow: `));
    const dripping = (async () => {
      for (let i = 0; i < 50; i++) {
        await sleep(100);
        if (!await slow.write(encode("a")).then(() => true, () => false)) break;
      }
    })();
    const slowloris = await untilClosed(slow).catch((error) => ({ text: error.name, ms: 0 }));
    await dripping;
    assertEquals(slowloris.text, "");
    assert(slowloris.ms < 3_000, `slowloris kept its connection ${slowloris.ms} ms`);

    // A request answered on a kept-alive connection, then quiet: closed after --keep-alive.
    const kept = await rawConnect(http);
    conns.push(kept);
    await writeAll(kept, encode(`HEAD / HTTP/1.1\r\nHost: 127.0.0.1:${http}\r\n\r\n`));
    const answer = await untilClosed(kept);
    assertEquals(answer.text.split("\r\n")[0], "HTTP/1.1 200 OK");
    assertStringIncludes(answer.text, "\r\nconnection: keep-alive\r\n");
    assert(answer.text.endsWith("\r\n\r\n"), "HEAD has no body");
    assert(answer.ms >= 400 && answer.ms < 5_000, `closed after ${answer.ms} ms`);
    assertEquals(server.stderr, "");
  } finally {
    conns.forEach(closeRaw);
    await server.stop();
  }
});

Deno.test("lesson 13: a request head over the limits gets 431, a bad one 400", async () => {
  const { server, http } = await start();
  try {
    const ask = async (head: string) => {
      const conn = await rawConnect(http);
      try {
        await writeAll(conn, encode(head)).catch(() => {});
        return (await untilClosed(conn)).text.split("\r\n")[0];
      } finally {
        closeRaw(conn);
      }
    };
    const host = `Host: 127.0.0.1:${http}\r\n`;
    assertEquals(
      await ask(`GET / HTTP/1.1\r\n${host}X-Big: ${"a".repeat(9000)}\r\n\r\n`),
      "HTTP/1.1 431 Request Header Fields Too Large",
    );
    assertEquals(
      await ask(`GET / HTTP/1.1\r\n${host}${"X-A: 1\r\n".repeat(70)}\r\n`),
      "HTTP/1.1 431 Request Header Fields Too Large",
    );
    assertEquals(await ask("hello there\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    assertEquals(
      await ask(`GET / HTTP/1.1\r\n${host}no colon\r\n\r\n`),
      "HTTP/1.1 400 Bad Request",
    );
    // Typed into nc, with bare LFs: accepted.
    assertEquals(await ask(`GET /style.css HTTP/1.0\n${host}\n`), "HTTP/1.1 200 OK");
  } finally {
    await server.stop();
  }
});

Deno.test("lesson 13: one page connection over --max-page-connections gets 503", async () => {
  const { server, http } = await start(["--max-page-connections", "2"]);
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 2; i++) conns.push(await rawConnect(http));
    const third = await rawConnect(http);
    conns.push(third);
    const busy = await untilClosed(third);
    assertEquals(busy.text.split("\r\n")[0], "HTTP/1.1 503 Service Unavailable");
    assert(busy.text.endsWith("\r\n\r\nserver busy\n"), busy.text);
    assert(await server.waitForLine(/^turned away a page connection: 2 open \(the limit\)$/));
    // Their places are given back when they close.
    conns.forEach(closeRaw);
    let status = 0;
    for (const deadline = Date.now() + 5_000; status !== 200 && Date.now() < deadline;) {
      await sleep(50);
      const page = await fetch(`http://127.0.0.1:${http}/`, { headers: { connection: "close" } });
      status = page.status;
      await page.body?.cancel();
    }
    assertEquals(status, 200);
    // A WebSocket holds its place too: one of them and one idle connection fill 2.
    const web = await Socket.join(http, "web");
    try {
      await sleep(200); // the fetches' connections are closed by now
      conns.push(await rawConnect(http));
      const over = await rawConnect(http);
      conns.push(over);
      assertEquals(
        (await untilClosed(over)).text.split("\r\n")[0],
        "HTTP/1.1 503 Service Unavailable",
      );
    } finally {
      await web.close();
    }
  } finally {
    conns.forEach(closeRaw);
    await server.stop();
  }
});

Deno.test("lesson 13: out of file descriptors (prlimit): alive, said once, the page and chat after", async () => {
  await using server = await RawServer.start("lesson13-server", [], { nofile: 96 });
  assert(await server.waitFor(/^page at http:\/\/127\.0\.0\.1:\d+\/$/m));
  const http = Number(server.stdout.match(/^page at http:\/\/127\.0\.0\.1:(\d+)\/$/m)![1]);
  const conns: Deno.TcpConn[] = [];
  try {
    // 150 connections held, half of them with half a request: more than it has descriptors for.
    for (let i = 0; i < 150; i++) {
      const conn = await rawConnect(http).catch(() => undefined);
      if (!conn) throw new Error(`connection ${i} failed:\n${(await server.stop()).stderr}`);
      conns.push(conn);
      if (i % 2) await writeAll(conn, encode("GET / HTTP/1.1\r\n")).catch(() => {});
    }
    assert(
      await server.waitFor(/^out of file descriptors with \d+ connections open: serving at most/m),
      server.stdout,
    );
    await sleep(500);
    conns.forEach(closeRaw);
    // Still alive: the page loads, and two WebSocket users chat.
    let status = 0;
    for (const deadline = Date.now() + 5_000; status !== 200 && Date.now() < deadline;) {
      await sleep(100);
      const page = await fetch(`http://127.0.0.1:${http}/`, { headers: { connection: "close" } })
        .catch(() => undefined);
      status = page?.status ?? 0;
      await page?.body?.cancel();
    }
    assertEquals(status, 200);
    const a = await Socket.join(http, "a");
    const b = await Socket.join(http, "b");
    try {
      assertEquals(await a.next(), "joined b");
      assertEquals(await b.ask("/to a hello again"), "ok sent a");
      assertEquals(await a.next(), "from b hello again");
    } finally {
      await a.close();
      await b.close();
    }
    const result = await server.stop();
    // No crash, no stack trace. (Deno itself may warn that it could not load
    // the system's CA certificates, when the gateway first connects: that is
    // Deno's own line, not the lesson's.)
    const stderr = result.stderr.split("\n")
      .filter((line) => line !== "" && !/Warning.*Ignoring extra certs/.test(line));
    assertEquals(stderr, []);
    // A line each time the limit is lowered (once or twice: the chat needs
    // descriptors too), not one per refused client: those are throttled.
    const lowered = result.stdout.match(/^out of file descriptors/gm)?.length ?? 0;
    assert(lowered >= 1 && lowered <= 3, result.stdout);
  } finally {
    conns.forEach(closeRaw);
  }
});

/** The server's frames (unmasked, short), read until it closes the connection. */
async function serverFrames(conn: Deno.TcpConn): Promise<Uint8Array> {
  return await readToEnd(conn, 10_000);
}

/** A server frame, byte for byte, as RFC 6455 lays it out (7-bit length). */
function serverFrame(opcode: number, payload: Uint8Array): number[] {
  assert(payload.length < 126);
  return [0x80 | opcode, payload.length, ...payload];
}

/** A close frame's payload: the code in 2 bytes, then the reason. */
function closePayload(code: number, reason: string): Uint8Array {
  return new Uint8Array([code >> 8, code & 0xff, ...encode(reason)]);
}

Deno.test("lesson 13: a frame announcing 60 MiB gets 1009 before any of it is sent", async () => {
  const { server, http } = await start();
  const { conn, status } = await upgrade(http, { Origin: `http://127.0.0.1:${http}` });
  try {
    assertEquals(status, "HTTP/1.1 101 Switching Protocols");
    // The header alone: FIN + text, MASK + 127, 64-bit length 60 MiB, a mask. No payload.
    await writeAll(
      conn,
      new Uint8Array([0x81, 0xff, 0, 0, 0, 0, 0x03, 0xc0, 0x00, 0x00, 1, 2, 3, 4]),
    );
    // The answer, the close (1009), and the server's FIN: without one byte of payload.
    assertEquals([...await serverFrames(conn)], [
      ...serverFrame(0x1, encode("error line-too-long lines are at most 4096 bytes")),
      ...serverFrame(0x8, closePayload(1009, "messages are at most 4096 bytes")),
    ]);
  } finally {
    closeRaw(conn);
    await server.stop();
  }
});

Deno.test("lesson 13: fragments over the limit together get 1009 too", async () => {
  const { server, http } = await start();
  const { conn } = await upgrade(http, { Origin: `http://127.0.0.1:${http}` });
  try {
    // 3,000 bytes in a first fragment (FIN clear), then the header of 1,200 more.
    const mask = [9, 8, 7, 6];
    const first = new Uint8Array(3000).fill(0x61).map((byte, i) => byte ^ mask[i % 4]);
    await writeAll(conn, new Uint8Array([0x01, 0x80 | 126, 0x0b, 0xb8, ...mask, ...first]));
    await writeAll(conn, new Uint8Array([0x80, 0x80 | 126, 0x04, 0xb0, ...mask]));
    assertEquals([...await serverFrames(conn)], [
      ...serverFrame(0x1, encode("error line-too-long lines are at most 4096 bytes")),
      ...serverFrame(0x8, closePayload(1009, "messages are at most 4096 bytes")),
    ]);
  } finally {
    closeRaw(conn);
    await server.stop();
  }
});

Deno.test("lesson 13: an unmasked client frame is refused (1002)", async () => {
  const { server, http } = await start();
  const { conn } = await upgrade(http, { Origin: `http://127.0.0.1:${http}` });
  try {
    await writeAll(conn, new Uint8Array([0x81, 0x05, ...encode("/name x")].slice(0, 7)));
    assertEquals([...await serverFrames(conn)], [
      ...serverFrame(0x8, closePayload(1002, "client frames must be masked")),
    ]);
  } finally {
    closeRaw(conn);
    await server.stop();
  }
});

Deno.test("lesson 13: ping and pong, and the close handshake, by hand", async () => {
  const { server, http } = await start();
  const { conn } = await upgrade(http, { Origin: `http://127.0.0.1:${http}` });
  try {
    // A ping with a payload is answered by a pong with the same payload.
    await writeAll(conn, new Uint8Array([0x89, 0x82, 0, 0, 0, 0, 0x68, 0x69]));
    assertEquals([...await readExactly(conn, 4)], serverFrame(0xa, encode("hi")));
    // Our close (1000, "done"): the server answers with the same, then closes.
    const mask = [1, 2, 3, 4];
    const payload = closePayload(1000, "done").map((byte, i) => byte ^ mask[i % 4]);
    await writeAll(conn, new Uint8Array([0x88, 0x80 | payload.length, ...mask, ...payload]));
    assertEquals([...await serverFrames(conn)], serverFrame(0x8, closePayload(1000, "done")));
  } finally {
    closeRaw(conn);
    await server.stop();
  }
});
