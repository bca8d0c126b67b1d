import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import {
  EchoPattern,
  formatProgress,
  formatReport,
  LatencyHistogram,
  type LoadOptions,
  LoadStats,
  PATTERN_PERIOD,
} from "../lib/load.ts";
import { closeQuietly } from "../lib/net.ts";
import { programsRoot, taskArgs } from "../tools/lesson_process.ts";
import { LessonServer, runTask } from "./_helpers.ts";
import { test } from "./_checks.ts";

/** The server this lesson's client talks to (lesson 08's echo server on port 65409). */
const SERVER = "lesson09-server";
const CLIENT = "lesson09-client";

/** The summary lines of a --load run, by their label ("errors", "round trips", ...). */
function summary(stdout: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const match = line.match(/^([a-z -]+?)\s{2,}(.*)$/);
    if (match) fields[match[1]] = match[2];
  }
  return fields;
}

test("lesson 09: a concurrent client against the echo server", async (t) => {
  await using server = await LessonServer.start(SERVER);
  const port = String(server.port);

  await t.step(
    "interactive: piped lines come back, then a summary once the server closes",
    async () => {
      const input = "hello\nwörld 🌮\nno newline at the end";
      const bytes = new TextEncoder().encode(input).length;
      const client = await runTask(CLIENT, ["--port", port], { stdin: input });
      assertEquals([client.code, client.stderr], [0, ""]);
      assertEquals(
        client.stdout,
        [
          "< hello",
          "< wörld 🌮",
          "< no newline at the end",
          `sent ${bytes} bytes, got ${bytes} bytes, the server closed the connection`,
          "",
        ].join("\n"),
      );
    },
  );

  await t.step("interactive: empty stdin half-closes at once", async () => {
    const started = Date.now();
    const client = await runTask(CLIENT, ["--port", port], { stdin: "" });
    const elapsed = Date.now() - started;
    assertEquals([client.code, client.stdout, client.stderr], [
      0,
      "sent 0 bytes, got 0 bytes, the server closed the connection\n",
      "",
    ]);
    // It exits once the server has closed: no timer left running until --timeout (10 s).
    assert(elapsed < 8_000, `exited after ${elapsed} ms`);
  });

  await t.step("--load ping-pong: 10 connections × 100 messages × 64 bytes, 0 errors", async () => {
    const client = await runTask(CLIENT, [
      "--port",
      port,
      "--load",
      "--connections",
      "10",
      "--messages",
      "100",
      "--size",
      "64",
    ]);
    assertEquals([client.code, client.stderr], [0, ""]);
    assert(!client.stdout.includes("\r"), "no progress line when stdout is not a terminal");
    const fields = summary(client.stdout);
    assertEquals(
      fields["ping-pong"],
      "10 connections × 100 messages × 64 bytes, every byte checked",
    );
    assertMatch(fields["round trips"], /^1,000 \([\d,]+\/s\)$/);
    assertMatch(fields["throughput"], /^[\d,]+\.\d\d MB\/s each way$/);
    assertMatch(fields["latency"], /^p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$/);
    assertMatch(fields["time"], /^[\d.]+ ms$/);
    assertEquals(fields["errors"], "0");
    assertEquals(client.stdout.split("\n").length, 7, client.stdout);
  });

  await t.step("--load ping-pong with 16 MiB messages: written and read at once", async () => {
    // Larger than the socket buffers: writing all before reading would deadlock.
    const client = await runTask(CLIENT, [
      "--port",
      port,
      "--load",
      "--connections",
      "2",
      "--messages",
      "2",
      "--size",
      String(16 * 1024 * 1024),
      "--timeout",
      "5",
    ]);
    assertEquals([client.code, client.stderr], [0, ""]);
    const fields = summary(client.stdout);
    assertMatch(fields["round trips"], /^4 \(/);
    assertEquals(fields["errors"], "0");
  });

  await t.step("--load --stream 1: pipelined, every byte checked, 0 errors", async () => {
    const started = Date.now();
    const client = await runTask(CLIENT, ["--port", port, "--load", "--stream", "1"]);
    assertEquals([client.code, client.stderr], [0, ""]);
    assert(Date.now() - started >= 1000, "it streams for the whole second");
    const fields = summary(client.stdout);
    assertEquals(
      fields["stream"],
      "1 connection for 1 s, writes of 65,536 bytes, every byte checked",
    );
    assertMatch(fields["round trips"], /^[1-9][\d,]* writes echoed \([\d,]+\/s\)$/);
    assertMatch(fields["throughput"], /^[\d,]+\.\d\d MB\/s each way$/);
    assertMatch(fields["latency"], /^p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms \(from a write/);
    assertEquals(fields["errors"], "0");
  });

  await t.step("--load --stream with 3 connections and odd-sized writes", async () => {
    const client = await runTask(CLIENT, [
      "--port",
      port,
      "--load",
      "--stream",
      "0.5",
      "--connections",
      "3",
      "--size",
      "10007",
    ]);
    assertEquals([client.code, client.stderr], [0, ""]);
    assertEquals(summary(client.stdout)["errors"], "0");
  });

  await t.step("flags that do not fit together are one-line usage errors", async () => {
    const cases: [string[], string][] = [
      [["--stream", "1"], "--stream only works with --load"],
      [
        ["--load", "--stream", "1", "--messages", "5"],
        "--messages is for ping-pong; --stream runs for a time instead",
      ],
      [
        ["--load", "--connections", "1000", "--size", String(16 * 1024 * 1024)],
        "--connections × --size is over the limit of 256 MiB",
      ],
      [["--load", "--stream", "0"], '--stream must be a number from 0.1 to 3600, got "0"'],
    ];
    for (const [args, message] of cases) {
      const client = await runTask(CLIENT, ["--port", port, ...args]);
      assertEquals([client.code, client.stdout, client.stderr], [2, "", `${message}\n`]);
    }
  });
});

// ---------------------------------------------------------------------------
// Misbehaving servers, written here so each test controls exactly what goes wrong.

/**
 * A loopback server running `handle` for each connection; dispose it to close
 * everything. `closing` resolves when the server is being disposed.
 */
function testServer(
  handle: (conn: Deno.TcpConn, closing: Promise<void>) => Promise<void>,
): { port: number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const handlers: Promise<void>[] = [];
  const closing = Promise.withResolvers<void>();
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        handlers.push(
          handle(conn, closing.promise).catch(() => {}).finally(() => closeQuietly(conn)),
        );
      }
    } catch {
      // the listener was closed
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      closing.resolve();
      closeQuietly(listener);
      for (const conn of conns) closeQuietly(conn);
      await accepting;
      await Promise.all(handlers);
    },
  };
}

/** An echo server that flips every bit of byte 2 of the 3rd chunk it reads (over all connections). */
function corruptingServer() {
  let chunks = 0;
  return testServer(async (conn) => {
    const buffer = new Uint8Array(64 * 1024);
    let n: number | null;
    while ((n = await conn.read(buffer)) !== null) {
      if (++chunks === 3) buffer[1] ^= 0xff;
      await writeAll(conn, buffer.subarray(0, n));
    }
  });
}

Deno.test("lesson 09: --load reports a server that corrupts a byte, exit 1", async (t) => {
  await t.step("ping-pong: the corrupted message is named, byte and values", async () => {
    await using server = corruptingServer();
    const client = await runTask(CLIENT, [
      "--port",
      String(server.port),
      "--load",
      "--connections",
      "1",
      "--messages",
      "10",
      "--size",
      "64",
    ]);
    assertEquals(client.code, 1);
    assertEquals(client.stderr, "1 of 1 connections failed: see the errors above\n");
    const fields = summary(client.stdout);
    assertMatch(fields["round trips"], /^2 \(/);
    assertEquals(fields["errors"], "1");
    assertMatch(
      client.stdout,
      /\n {2}connection 1: message 3, byte 2 of 64: got 0x[0-9a-f]{2}, expected 0x[0-9a-f]{2}\n$/,
    );
  });

  await t.step("ping-pong, 3 connections: one fails, the others finish", async () => {
    await using server = corruptingServer();
    const client = await runTask(CLIENT, [
      "--port",
      String(server.port),
      "--load",
      "--connections",
      "3",
      "--messages",
      "10",
    ]);
    assertEquals(client.code, 1);
    assertEquals(client.stderr, "1 of 3 connections failed: see the errors above\n");
    const fields = summary(client.stdout);
    assertEquals(fields["errors"], "1");
    // The failing connection had done some round trips (0 to 9); the others all 10.
    const roundTrips = Number(fields["round trips"].split(" ")[0]);
    assert(roundTrips >= 20 && roundTrips < 30, fields["round trips"]);
    assertMatch(client.stdout, /\n {2}connection \d: message \d+, byte 2 of 64: got /);
  });

  await t.step("stream: the corrupted byte is found in the stream", async () => {
    await using server = corruptingServer();
    const client = await runTask(CLIENT, [
      "--port",
      String(server.port),
      "--load",
      "--stream",
      "0.5",
    ]);
    assertEquals(client.code, 1);
    assertEquals(client.stderr, "1 of 1 connections failed: see the errors above\n");
    assertEquals(summary(client.stdout)["errors"], "1");
    assertMatch(
      client.stdout,
      /\n {2}connection 1: byte [\d,]+ of the stream: got 0x[0-9a-f]{2}, expected 0x[0-9a-f]{2}\n$/,
    );
  });
});

Deno.test("lesson 09: --load reports short echoes, extra bytes and silence", async (t) => {
  const run = (port: number, ...args: string[]) =>
    runTask(CLIENT, ["--port", String(port), "--load", "--connections", "1", ...args]);

  await t.step("the server closes after echoing 10 bytes", async () => {
    await using server = testServer(async (conn) => {
      const buffer = new Uint8Array(10);
      const n = await conn.read(buffer);
      if (n !== null) await writeAll(conn, buffer.subarray(0, n));
    });
    const client = await run(server.port, "--messages", "5");
    assertEquals(client.code, 1);
    assertStringIncludes(
      client.stdout,
      "\n  connection 1: message 1: the server closed the connection after echoing 10 of 64 bytes\n",
    );
  });

  await t.step("the server echoes everything twice", async () => {
    await using server = testServer(async (conn) => {
      const buffer = new Uint8Array(64 * 1024);
      let n: number | null;
      while ((n = await conn.read(buffer)) !== null) {
        await writeAll(conn, buffer.subarray(0, n));
        await writeAll(conn, buffer.subarray(0, n));
      }
    });
    const stream = await run(server.port, "--stream", "0.2");
    assertEquals(stream.code, 1);
    assertMatch(stream.stdout, /\n {2}connection 1: byte [\d,]+ of the stream: got /);
    const pingPong = await run(server.port, "--messages", "1");
    assertEquals(pingPong.code, 1);
    assertStringIncludes(
      pingPong.stdout,
      "\n  connection 1: after the last echo the server sent 64 more bytes\n",
    );
  });

  await t.step("the server reads but never answers: --timeout 1", async () => {
    await using server = testServer(async (conn) => {
      const buffer = new Uint8Array(1024);
      while (await conn.read(buffer) !== null) { /* swallow */ }
    });
    const started = Date.now();
    const client = await run(server.port, "--messages", "5", "--timeout", "1");
    const elapsed = Date.now() - started;
    assertEquals(client.code, 1);
    assertStringIncludes(
      client.stdout,
      "\n  connection 1: timed out after 1 s waiting for the echo of message 1\n",
    );
    assert(elapsed < 8000, `gave up after ${elapsed} ms`);
  });
});

test("lesson 09: interactive mode's two tasks and its time limit", async (t) => {
  await t.step("the reader sees the server close while stdin is still open", async () => {
    // A sequential client would sit in its stdin read forever; ours has a
    // reader task that notices the server's goodbye and ends the program.
    await using server = testServer(async (conn) => {
      await writeAll(conn, new TextEncoder().encode("welcome, and goodbye\n"));
    });
    const child = new Deno.Command("deno", {
      args: [...taskArgs(CLIENT), "--port", String(server.port)],
      cwd: programsRoot(), // the course, or the exercise's scratch copy
      stdin: "piped", // kept open: the client gets no EOF from us
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    try {
      const output = await child.output();
      assertEquals(new TextDecoder().decode(output.stderr), "");
      assertEquals(
        new TextDecoder().decode(output.stdout),
        "< welcome, and goodbye\nthe server closed the connection (we sent 0 bytes, got 21)\n",
      );
      assertEquals(output.code, 0);
    } finally {
      clearTimeout(timer);
      await child.stdin.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.status;
    }
  });

  await t.step("after stdin ends, it waits at most --timeout for the server to close", async () => {
    await using server = testServer(async (conn, closing) => {
      const buffer = new Uint8Array(1024);
      while (await conn.read(buffer) !== null) { /* never answers */ }
      await closing; // and never closes (until the test ends)
    });
    const started = Date.now();
    const client = await runTask(CLIENT, ["--port", String(server.port), "--timeout", "1"], {
      stdin: "anyone there?\n",
    });
    const elapsed = Date.now() - started;
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      "",
      "timed out after 1 s waiting for the server to close the connection\n",
    ]);
    assert(elapsed >= 1000 && elapsed < 8000, `gave up after ${elapsed} ms`);
  });
});

Deno.test("lib/load.ts: the pattern, the histogram and the summaries", async (t) => {
  await t.step(
    "EchoPattern: every connection and message differs; pieces run past the period",
    () => {
      const pattern = new EchoPattern(100_000);
      const first = pattern.bytes(0, 0, 64);
      assert(first.some((b, i) => b !== pattern.bytes(0, 64, 64)[i]), "message 2 differs");
      assert(first.some((b, i) => b !== pattern.bytes(1, 0, 64)[i]), "connection 2 differs");
      // A piece across the end of the period equals the bytes read one at a time.
      const position = PATTERN_PERIOD - 10;
      const across = pattern.bytes(3, position, 50_000);
      for (const offset of [0, 9, 10, 11, 49_999]) {
        assertEquals(across[offset], pattern.bytes(3, position + offset, 1)[0], `offset ${offset}`);
      }
      assertEquals(pattern.check(3, position, across.slice()), -1);
      const damaged = across.slice();
      damaged[12_345] ^= 0x40;
      assertEquals(pattern.check(3, position, damaged), 12_345);
    },
  );

  await t.step("LatencyHistogram: percentiles within 2%, fixed memory", () => {
    const histogram = new LatencyHistogram();
    assert(Number.isNaN(histogram.percentile(50)));
    for (let i = 1; i <= 10_000; i++) histogram.record(i / 100); // 0.01 ms to 100 ms
    assertEquals([histogram.count, histogram.max], [10_000, 100]);
    for (const [p, expected] of [[50, 50], [99, 99], [100, 100]]) {
      const got = histogram.percentile(p);
      assert(Math.abs(got - expected) / expected < 0.02, `p${p}: ${got}`);
    }
  });

  const options: LoadOptions = {
    host: "127.0.0.1",
    port: 65409,
    lesson: 9,
    connections: 4,
    size: 64,
    timeoutMs: 10_000,
    mode: "ping-pong",
    messages: 250,
  };

  await t.step("formatProgress: a bar, the count, the rate and the errors", () => {
    const stats = new LoadStats();
    stats.connected = 3;
    assertEquals(formatProgress(options, stats, 0), "connecting: 3/4");
    stats.startedAt = 1000;
    stats.roundTrips = 500;
    stats.addError("connection 1: timed out");
    assertEquals(
      formatProgress(options, stats, 1500),
      "[##########..........]  50%  500/1,000 round trips  1,000/s  1 error",
    );
    const streaming: LoadOptions = { ...options, mode: "stream", seconds: 4 };
    stats.bytes = 2_500_000_000;
    assertEquals(
      formatProgress(streaming, stats, 2000),
      "[#####...............]  25%  1.0/4 s  2,500.0 MB/s  1 error",
    );
  });

  await t.step("formatReport: the summary, and at most 10 error lines", () => {
    const stats = new LoadStats();
    stats.startedAt = 0;
    stats.lastEchoAt = 500;
    stats.roundTrips = 1000;
    stats.bytes = 64_000;
    for (let i = 0; i < 1000; i++) stats.latency.record(0.1);
    for (let i = 1; i <= 12; i++) stats.addError(`connection ${i}: connection reset by peer`);
    const lines = formatReport(options, stats);
    assertEquals(lines.slice(0, 6), [
      "ping-pong    4 connections × 250 messages × 64 bytes, every byte checked",
      "time         500.0 ms",
      "round trips  1,000 (2,000/s)",
      "throughput   0.13 MB/s each way",
      "latency      p50 0.100 ms, p99 0.100 ms, max 0.100 ms",
      "errors       12",
    ]);
    assertEquals(lines.length, 6 + 10 + 1);
    assertEquals(lines.at(-1), "  ... and 2 more");
  });
});
