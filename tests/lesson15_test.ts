/**
 * Lesson 15: every failure reproduced on purpose, and the client's cures
 * (deadlines, retries with backoff, request ids, heartbeats) checked.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { test } from "./_checks.ts";
import { LineDecoder } from "../lib/lines.ts";
import { backoff, checkAnswer } from "../lessons/15-when-things-fail/client.ts";
import { Ledger } from "../lessons/15-when-things-fail/server.ts";
import {
  closedPort,
  closeRaw,
  encode,
  LessonServer,
  rawConnect,
  readToEnd,
  runTask,
  sleep,
} from "./_helpers.ts";

const CLIENT = "lesson15-client";
const SERVER = "lesson15-server";

/** The client's output with the random backoff times replaced. */
function lines(stdout: string): string[] {
  return stdout.trimEnd().split("\n").map((line) => line.replace(/\d+(\.\d+)? ms\b/, "N ms"));
}

/** Reads a raw socket line by line (each read time-limited). */
class LineReader {
  #conn: Deno.TcpConn;
  #decoder = new LineDecoder();
  #pending: string[] = [];
  #buffer = new Uint8Array(4096);

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** The next line, or null at EOF. */
  async next(): Promise<string | null> {
    while (this.#pending.length === 0) {
      const n = await readWithTimeout(this.#conn, this.#buffer, 5_000, "the peer");
      if (n === null) return null;
      this.#pending.push(...this.#decoder.push(this.#buffer.subarray(0, n)));
    }
    return this.#pending.shift()!;
  }
}

Deno.test("Ledger applies a request with an id once, and forgets the oldest answers", () => {
  const ledger = new Ledger(2, 1000);
  assertEquals(ledger.apply("@a-1 Hello"), { reply: "@a-1 1: olleH", retry: false });
  assertEquals(ledger.apply("@a-1 Hello"), { reply: "@a-1 1: olleH", retry: true });
  assertEquals(ledger.apply("Hello"), { reply: "2: olleH", retry: false });
  assertEquals(ledger.apply("Hello"), { reply: "3: olleH", retry: false }); // no id: applied again
  ledger.apply("@b-1 x");
  ledger.apply("@c-1 y"); // a-1 is the oldest of three: forgotten
  assertEquals(ledger.apply("@a-1 Hello"), { reply: "@a-1 6: olleH", retry: false });
  assertEquals(ledger.applied, 6);
  // The character budget: one long answer pushes the older ones out.
  const small = new Ledger(100, 30);
  small.apply("@a-1 x"); // "@a-1 1: x", 9 characters
  small.apply("@b-1 " + "y".repeat(20)); // 29 characters: 38 in all, a-1 goes
  assertEquals(small.apply("@b-1 " + "y".repeat(20)).retry, true);
  assertEquals(small.apply("@a-1 x"), { reply: "@a-1 3: x", retry: false });
});

Deno.test("backoff doubles from 200 ms up to 5 s, half of it random", () => {
  assertEquals([0, 1, 2, 3].map((retry) => backoff(retry, () => 0)), [100, 200, 400, 800]);
  assertEquals([0, 1, 2, 3].map((retry) => backoff(retry, () => 1)), [200, 400, 800, 1600]);
  assertEquals([5, 6, 20].map((retry) => backoff(retry, () => 1)), [5000, 5000, 5000]);
  assertEquals(backoff(20, () => 0), 2500);
});

Deno.test("checkAnswer accepts only lesson 05's answer to this request", () => {
  assertEquals(checkAnswer("@a-1 7: olleH", "@a-1 Hello", false), "7: olleH");
  assertEquals(checkAnswer("12: olleH", "Hello", true), "12: olleH");
  for (
    const [reply, request] of [["@a-2 7: olleH", "@a-1 Hello"], ["@a-1 7: dlrow", "@a-1 Hello"]]
  ) {
    assertEquals(
      (() => {
        try {
          return checkAnswer(reply, request, false);
        } catch (error) {
          return (error as Error).message;
        }
      })(),
      `the answer does not match the request: ${JSON.stringify(reply)}`,
    );
  }
});

Deno.test("checkAnswer: only server busy is worth a retry, other errors reject the request", () => {
  const worthRetrying = (reply: string) => {
    try {
      checkAnswer(reply, "@a-1 Hello", false);
    } catch (error) {
      return [(error as Error).message, (error as { worthRetrying: boolean }).worthRetrying];
    }
  };
  assertEquals(worthRetrying("error: server busy"), ["the server said: server busy", true]);
  assertEquals(worthRetrying("error: line is longer than the limit of 16 bytes"), [
    "the server said: line is longer than the limit of 16 bytes",
    false,
  ]);
});

test("a request the server rejects is lost at once, and the next one is sent", async () => {
  await using server = await LessonServer.start(SERVER, ["--max-line", "16"]);
  const result = await runTask(CLIENT, [
    "--port",
    String(server.port),
    "--message",
    "this line is too long",
    "--message",
    "Hi",
  ]);
  const said = "the server said: line is longer than the limit of 16 bytes";
  assertEquals(result.code, 1);
  assertEquals(result.stderr, said + "\n");
  assertEquals(lines(result.stdout), [
    "> #1 this line is too long",
    `! #1 ${said}`,
    "  rejected by the server: not worth retrying: #1 is lost",
    "> #2 Hi",
    "< #2 1: iH",
    "2 requests: 1 answered, 1 lost; 2 attempts, 1 reconnect",
  ]);
});

test("lesson 15 pair: requests answered, a summary, exit 0", async () => {
  await using server = await LessonServer.start(SERVER);
  const result = await runTask(CLIENT, [
    "--port",
    String(server.port),
    "--message",
    "Hello",
    "--message",
    "wörld 🌮",
  ]);
  assertEquals(result.stderr, "");
  assertEquals(result.code, 0);
  assertEquals(lines(result.stdout), [
    "> #1 Hello",
    "< #1 1: olleH",
    "> #2 wörld 🌮",
    "< #2 2: 🌮 dlröw",
    "2 requests: 2 answered, 0 lost; 2 attempts, 0 reconnects",
  ]);
  assert(await server.waitForLine(/^closed connection from 127\.0\.0\.1:\d+ after 2 answers$/));
});

Deno.test("lesson 15 server: ids, /ping, /bye, lines too long, on a raw socket", async () => {
  await using server = await LessonServer.start(SERVER, ["--max-line", "16"]);
  const first = await rawConnect(server.port);
  try {
    await writeAll(first, encode("@t-1 Hello\n/ping\nHello\n"));
    const reader = new LineReader(first);
    assertEquals(await reader.next(), "@t-1 1: olleH");
    assertEquals(await reader.next(), "pong");
    assertEquals(await reader.next(), "2: olleH");
  } finally {
    closeRaw(first);
  }
  const second = await rawConnect(server.port);
  try {
    // The same id on a new connection: the first answer, not applied again.
    await writeAll(second, encode("@t-1 Hello\n/bye\n"));
    assertEquals(
      new TextDecoder().decode(await readToEnd(second, 5_000)),
      "@t-1 1: olleH\nbye\n",
    );
  } finally {
    closeRaw(second);
  }
  assert(await server.waitForLine("a retried request: answered from memory, not applied again"));
  const third = await rawConnect(server.port);
  try {
    await writeAll(third, encode("@t-2 this line is too long\n"));
    assertEquals(
      new TextDecoder().decode(await readToEnd(third, 5_000)),
      "error: line is longer than the limit of 16 bytes\n",
    );
  } finally {
    closeRaw(third);
  }
});

test("failure: connection refused, retried, then lost (ECONNREFUSED)", async () => {
  const port = closedPort();
  const result = await runTask(CLIENT, ["--port", String(port), "--retries", "2"]);
  const refused = `could not connect to 127.0.0.1:${port}: connection refused: ` +
    "is the server running? start it with: deno task lesson15-server";
  assertEquals(result.code, 1);
  assertEquals(result.stderr, refused + "\n");
  assertEquals(lines(result.stdout), [
    `! #1 ${refused} [ECONNREFUSED]`,
    "  retrying in N ms (1 retry left)",
    `! #1 ${refused} [ECONNREFUSED]`,
    "  retrying in N ms (0 retries left)",
    `! #1 ${refused} [ECONNREFUSED]`,
    "  no retries left: #1 is lost",
    "1 request: 0 answered, 1 lost; 3 attempts, 0 reconnects",
  ]);
});

test("failure: connect timeout on a full queue that is never accepted", async () => {
  await using server = await LessonServer.start(SERVER, ["--misbehave", "no-accept"]);
  assert(await server.waitForLine("never accepting: the queue is full with 2 connections"));
  const result = await runTask(CLIENT, [
    "--port",
    String(server.port),
    "--timeout",
    "0.5",
    "--retries",
    "0",
  ]);
  const message = `could not connect to 127.0.0.1:${server.port}: no answer after 0.5 s: ` +
    "is the address right? is the server's queue full?";
  assertEquals(result.code, 1);
  assertEquals(result.stderr, message + "\n");
  assertEquals(lines(result.stdout), [
    `! #1 ${message} [our timeout]`,
    "  no retries left: #1 is lost",
    "1 request: 0 answered, 1 lost; 1 attempt, 0 reconnects",
  ]);
});

test("failure: read timeout on a silent server", async () => {
  await using server = await LessonServer.start(SERVER, ["--misbehave", "silent"]);
  const started = performance.now();
  const result = await runTask(CLIENT, [
    "--port",
    String(server.port),
    "--timeout",
    "0.5",
    "--retries",
    "1",
  ]);
  const elapsed = performance.now() - started;
  assertEquals(result.code, 1);
  assertEquals(result.stderr, "gave up after 0.5 s waiting for the answer to #1\n");
  assertEquals(lines(result.stdout), [
    "> #1 Hello",
    "! #1 gave up after 0.5 s waiting for the answer to #1 [our timeout]",
    "  retrying in N ms (0 retries left)",
    "> #1 Hello (retry 1)",
    "! #1 gave up after 0.5 s waiting for the answer to #1 [our timeout]",
    "  no retries left: #1 is lost",
    "1 request: 0 answered, 1 lost; 2 attempts, 1 reconnect",
  ]);
  assert(elapsed >= 1_000, `two 0.5 s deadlines took only ${elapsed} ms`);
  // The server saw both connections end without an answer, and still serves.
  assert(await server.waitForLine(/after 0 answers$/));
});

test("failure: connection reset is a real RST (ECONNRESET), not a clean close", async () => {
  await using server = await LessonServer.start(SERVER, ["--misbehave", "reset"]);
  // A raw socket: its read fails with "connection reset", it does not see EOF.
  const conn = await rawConnect(server.port);
  try {
    await writeAll(conn, encode("@r-1 Hello\n"));
    await assertRejects(() => readToEnd(conn, 5_000), Deno.errors.ConnectionReset);
  } finally {
    closeRaw(conn);
  }
  const result = await runTask(CLIENT, ["--port", String(server.port), "--retries", "1"]);
  const reset = "connection reset by peer (the other side closed abruptly)";
  assertEquals(result.code, 1);
  assertEquals(result.stderr, reset + "\n");
  assertEquals(lines(result.stdout), [
    "> #1 Hello",
    `! #1 ${reset} [ECONNRESET]`,
    "  retrying in N ms (0 retries left)",
    "> #1 Hello (retry 1)",
    `! #1 ${reset} [ECONNRESET]`,
    "  no retries left: #1 is lost",
    "1 request: 0 answered, 1 lost; 2 attempts, 1 reconnect",
  ]);
  assert(
    await server.waitForLine(/^resetting the connection from 127\.0\.0\.1:\d+ \(RST, no FIN\)$/),
  );
});

test("failure: a clean close before the answer (EOF), and writing after it (EPIPE)", async () => {
  await using server = await LessonServer.start(SERVER, ["--misbehave", "close-early"]);
  const early = await runTask(CLIENT, ["--port", String(server.port), "--retries", "0"]);
  assertEquals(early.code, 1);
  assertEquals(early.stderr, "the server closed the connection before answering\n");
  assertEquals(lines(early.stdout), [
    "> #1 Hello",
    "! #1 the server closed the connection before answering [EOF]",
    "  no retries left: #1 is lost",
    "1 request: 0 answered, 1 lost; 1 attempt, 0 reconnects",
  ]);
  // In 2-byte pieces: the server has closed after the first, and the
  // third write is refused by our own kernel.
  const split = await runTask(CLIENT, ["--port", String(server.port), "--retries", "0", "--split"]);
  const pipe = "broken pipe (the other side closed before we finished writing)";
  assertEquals(split.code, 1);
  assertEquals(split.stderr, pipe + "\n");
  assertEquals(lines(split.stdout), [
    "> #1 Hello",
    `! #1 ${pipe} [EPIPE]`,
    "  no retries left: #1 is lost",
    "1 request: 0 answered, 1 lost; 1 attempt, 0 reconnects",
  ]);
  assert(await server.waitForLine(/before answering \(FIN\)$/));
});

Deno.test("failure: address in use, in every way the server listens", async () => {
  for (const mode of ["none", "reset", "no-accept"]) {
    await using first = await LessonServer.start(SERVER, ["--misbehave", mode]);
    const result = await runTask(SERVER, ["--port", String(first.port), "--misbehave", mode]);
    assertEquals([mode, result.code, result.stdout], [mode, 1, ""]);
    assertEquals(
      result.stderr,
      `port ${first.port} is already in use: is another server running? stop it, or try --port 0\n`,
    );
  }
});

test("failure: an unknown host name is not retried", async () => {
  const result = await runTask(CLIENT, ["--host", "no-such-host.invalid", "--count", "2"]);
  assertEquals(result.code, 1);
  // The resolver's own words vary ("Name or service not known", ...).
  assertMatch(
    result.stderr,
    /^could not connect to no-such-host\.invalid:65415: no such host: [^\n]+\n$/,
  );
  const out = lines(result.stdout);
  assertMatch(out[0], /^! #1 could not connect to no-such-host\.invalid:65415: .* \[EAI_\w+\]$/);
  if (out[0].endsWith("[EAI_NONAME]")) {
    assertEquals(out.slice(1), [
      "  not worth retrying: giving up (2 requests lost)",
      "2 requests: 0 answered, 2 lost; 1 attempt, 0 reconnects",
    ]);
  }
});

Deno.test("a bad --misbehave is a usage error", async () => {
  const result = await runTask(SERVER, ["--misbehave", "explode"]);
  assertEquals(result.code, 2);
  assertEquals(
    result.stderr,
    '--misbehave must be one of none, silent, reset, close-early, slow, flaky, no-accept, got "explode"\n',
  );
});

test("slow server: the retry gets the first answer from memory, at once", async () => {
  await using server = await LessonServer.start(SERVER, ["--misbehave", "slow", "--delay", "2"]);
  const result = await runTask(CLIENT, ["--port", String(server.port), "--timeout", "1"]);
  assertEquals(result.stderr, "");
  assertEquals(result.code, 0);
  assertEquals(lines(result.stdout), [
    "> #1 Hello",
    "! #1 gave up after 1 s waiting for the answer to #1 [our timeout]",
    "  retrying in N ms (2 retries left)",
    "> #1 Hello (retry 1)",
    "< #1 1: olleH",
    "1 request: 1 answered, 0 lost; 2 attempts, 1 reconnect",
  ]);
  assert(await server.waitForLine("a retried request: answered from memory, not applied again"));
});

test("flaky server (--seed 1): ids keep a retry from applying twice; --plain does not", async () => {
  for (const [plain, second, third] of [[false, "2", "3"], [true, "3", "4"]] as const) {
    await using server = await LessonServer.start(SERVER, ["--misbehave", "flaky", "--seed", "1"]);
    const result = await runTask(CLIENT, [
      "--port",
      String(server.port),
      "--count",
      "3",
      ...(plain ? ["--plain"] : []),
    ]);
    assertEquals([result.code, result.stderr], [0, ""]);
    assertEquals(lines(result.stdout), [
      "> #1 Hello",
      "< #1 1: olleH",
      "> #2 Hello",
      "! #2 the server closed the connection before answering [EOF]",
      "  retrying in N ms (2 retries left)",
      "> #2 Hello (retry 1)",
      `< #2 ${second}: olleH`,
      "> #3 Hello",
      `< #3 ${third}: olleH`,
      "3 requests: 3 answered, 0 lost; 4 attempts, 1 reconnect",
    ]);
    const log = (await server.stop()).stdout;
    assertStringIncludes(log, "before the answer (FIN)");
    assertEquals(log.includes("answered from memory"), !plain);
  }
});

test("the client reconnects after the server restarts on the same port", async () => {
  const first = await LessonServer.start(SERVER);
  const port = first.port;
  let second: LessonServer | undefined;
  try {
    const client = runTask(CLIENT, [
      "--port",
      String(port),
      "--count",
      "2",
      "--interval",
      "1.5",
      "--retries",
      "8",
    ]);
    assert(await first.waitForLine(/^connection from /));
    await sleep(300); // request 1 is answered
    await first.stop();
    second = await LessonServer.start(SERVER, ["--port", String(port)]);
    const result = await client;
    assertEquals([result.code, result.stderr], [0, ""]);
    const out = lines(result.stdout);
    assertEquals(out.slice(0, 3), ["> #1 Hello", "< #1 1: olleH", "> #2 Hello"]);
    // The old connection is dead (EOF or reset); a new one to the new server answers.
    assertMatch(
      out[3],
      /^! #2 (the server closed the connection before answering \[EOF\]|connection reset .* \[ECONNRESET\])$/,
    );
    // The new server counts from 1 again.
    assertEquals(out.slice(-2), [
      "< #2 1: olleH",
      "2 requests: 2 answered, 0 lost; 3 attempts, 1 reconnect",
    ]);
  } finally {
    await first.stop();
    await second?.stop();
  }
});

test("a connection the server closed while idle is replaced at once, no retry used", async () => {
  await using server = await LessonServer.start(SERVER, ["--idle-timeout", "1"]);
  const result = await runTask(CLIENT, [
    "--port",
    String(server.port),
    "--count",
    "2",
    "--interval",
    "1.5",
    "--retries",
    "0",
  ]);
  assertEquals([result.code, result.stderr], [0, ""]);
  assertEquals(lines(result.stdout), [
    "> #1 Hello",
    "< #1 1: olleH",
    "> #2 Hello",
    "! #2 the server closed the connection before answering [EOF]",
    "  the connection had sat idle: the server may have closed it; reconnecting",
    "> #2 Hello",
    "< #2 2: olleH",
    "2 requests: 2 answered, 0 lost; 3 attempts, 1 reconnect",
  ]);
});

test("the heartbeat notices a server that stopped answering, and the client reconnects", async () => {
  // A hostile server: its first connection answers once, then says nothing
  // (like a frozen process: TCP still looks fine); later ones answer all.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const conns: Deno.TcpConn[] = [];
  const serving = (async () => {
    let connections = 0;
    const tasks: Promise<void>[] = [];
    for await (const conn of listener) {
      conns.push(conn);
      const number = ++connections;
      tasks.push((async () => {
        const reader = new LineReader(conn);
        let answered = 0;
        try {
          while (true) {
            const line = await reader.next();
            if (line === null) break;
            if (number === 1 && answered === 1) continue; // frozen
            const reply = line === "/ping"
              ? "pong"
              : line.replace(/^(@\S+ )(.*)$/, (_, id, text) =>
                `${id}1: ${[...text].reverse().join("")}`);
            await writeAll(conn, encode(reply + "\n"));
            answered++;
          }
        } catch {
          // the client closed it
        } finally {
          closeRaw(conn);
        }
      })());
    }
    await Promise.all(tasks);
  })();
  try {
    const result = await runTask(CLIENT, [
      "--port",
      String(port),
      "--count",
      "2",
      "--interval",
      "1",
      "--heartbeat",
      "0.3",
      "--timeout",
      "0.5",
      "--retries",
      "0",
    ]);
    assertEquals([result.code, result.stderr], [0, ""]);
    assertEquals(lines(result.stdout), [
      "> #1 Hello",
      "< #1 1: olleH",
      "~ heartbeat failed: gave up after 0.5 s waiting for the pong: the server is not answering",
      "> #2 Hello",
      "< #2 1: olleH",
      "2 requests: 2 answered, 0 lost; 2 attempts, 1 reconnect",
    ]);
  } finally {
    listener.close();
    for (const conn of conns) closeRaw(conn);
    await serving;
  }
});

test("the retry budget is for the whole run: once spent, later requests are lost at once", async () => {
  await using server = await LessonServer.start(SERVER, ["--misbehave", "close-early"]);
  const result = await runTask(CLIENT, [
    "--port",
    String(server.port),
    "--count",
    "3",
    "--retries",
    "2",
  ]);
  const eof = "the server closed the connection before answering";
  assertEquals([result.code, result.stderr], [1, eof + "\n"]);
  assertEquals(lines(result.stdout), [
    "> #1 Hello",
    `! #1 ${eof} [EOF]`,
    "  retrying in N ms (1 retry left)",
    "> #1 Hello (retry 1)",
    `! #1 ${eof} [EOF]`,
    "  retrying in N ms (0 retries left)",
    "> #1 Hello (retry 2)",
    `! #1 ${eof} [EOF]`,
    "  no retries left: #1 is lost",
    "> #2 Hello",
    `! #2 ${eof} [EOF]`,
    "  no retries left: #2 is lost",
    "> #3 Hello",
    `! #3 ${eof} [EOF]`,
    "  no retries left: #3 is lost",
    "3 requests: 0 answered, 3 lost; 5 attempts, 4 reconnects",
  ]);
});

test("each retry waits the pause it announces: 100-200 ms, then 200-400, then 400-800", async () => {
  // A server that notes when each connection comes, reads the request and
  // closes without answering: every attempt fails, every retry reconnects.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const arrivals: number[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      arrivals.push(performance.now());
      await readWithTimeout(conn, new Uint8Array(1024), 5_000, "the client").catch(() => {});
      closeRaw(conn);
    }
  })();
  try {
    const result = await runTask(CLIENT, [
      "--port",
      String(listener.addr.port),
      "--retries",
      "3",
    ]);
    assertEquals(result.code, 1);
    const waits = [...result.stdout.matchAll(/^ {2}retrying in (\d+) ms/gm)].map((m) => +m[1]);
    assertEquals(waits.length, 3, result.stdout);
    assertEquals(arrivals.length, 4, "one connection per attempt");
    for (const [i, wait] of waits.entries()) {
      const ceiling = 200 * 2 ** i; // half of it fixed, half random
      assert(wait >= ceiling / 2 && wait <= ceiling, `retry ${i + 1}: ${wait} ms`);
      // The next connection came no sooner than the announced pause.
      const gap = arrivals[i + 1] - arrivals[i];
      assert(gap >= wait - 5, `retry ${i + 1} came ${gap.toFixed(0)} ms later, not ${wait}`);
    }
  } finally {
    listener.close();
    await serving;
  }
});
