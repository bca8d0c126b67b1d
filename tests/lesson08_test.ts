import { assert, assertEquals, assertMatch } from "@std/assert";
import { test } from "./_checks.ts";
import { writeAll } from "../lib/io.ts";
import { readWithTimeout } from "../lib/io.ts";
import { BIG_BUFFER, ReadBuffers, SMALL_BUFFER } from "../lessons/08-many-clients/server.ts";
import { RawServer } from "./_raw_server.ts";
import { pressCtrlC } from "./_group.ts";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  randomBytes,
  rawConnect,
  readExactly,
  readToEnd,
  resetConnections,
  runTask,
  sleep,
} from "./_helpers.ts";

/** Opens `count` raw connections, `batch` at a time (a burst of 1,000 SYNs can overflow a backlog). */
async function connectMany(port: number, count: number, batch = 100): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < count; i += batch) {
      const n = Math.min(batch, count - i);
      conns.push(...await Promise.all(Array.from({ length: n }, () => rawConnect(port))));
    }
  } catch (error) {
    conns.forEach(closeRaw);
    throw error;
  }
  return conns;
}

/** Expects EOF next (with a time limit). */
async function assertEof(conn: Deno.TcpConn, timeoutMs = 5_000) {
  const n = await readWithTimeout(conn, new Uint8Array(1), timeoutMs, "EOF");
  assertEquals(n, null, "expected EOF");
}

/** Waits for `line` among the lines the server printed after its first `from` lines. */
async function waitForLineAfter(
  server: LessonServer,
  from: number,
  line: string,
  timeoutMs = 10_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (!server.lines.slice(from).includes(line)) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

/** A payload only connection `i` sends: its number, every byte value, then some random bytes. */
function payloadFor(i: number): Uint8Array {
  const head = encode(`client ${i}:`);
  const all = Uint8Array.from({ length: 256 }, (_, b) => b);
  const tail = randomBytes(i % 97);
  const payload = new Uint8Array(head.length + all.length + tail.length);
  payload.set(head);
  payload.set(all, head.length);
  payload.set(tail, head.length + all.length);
  return payload;
}

test("lesson 08: many clients at once", async (t) => {
  await using server = await LessonServer.start("lesson08-server");
  const port = String(server.port);

  await t.step("the lesson's client and server as a pair", async () => {
    const client = await runTask("lesson08-client", ["--port", port]);
    assertEquals([client.code, client.stdout, client.stderr], [0, 'Received "Hello, world"\n', ""]);
    assert(await server.waitForLine("active connections: 0"));
    assertEquals(server.lines.slice(1), ["active connections: 1", "active connections: 0"]);
  });

  await t.step(
    "1,000 connections at the same time, each echoed its own binary payload",
    async () => {
      const started = Date.now();
      const from = server.lines.length;
      const conns = await connectMany(server.port, 1000);
      try {
        // All 1,000 are open at once (the log may hold the line back for up to a second).
        assert(
          await server.waitForLine("active connections: 1000", 10_000),
          server.lines.join("\n"),
        );
        const payloads = conns.map((_, i) => payloadFor(i));
        await Promise.all(conns.map(async (conn, i) => {
          await writeAll(conn, payloads[i]);
          await conn.closeWrite();
          assertEquals(await readExactly(conn, payloads[i].length), payloads[i], `connection ${i}`);
          await assertEof(conn);
        }));
      } finally {
        conns.forEach(closeRaw);
      }
      assert(await waitForLineAfter(server, from, "active connections: 0"));
      assert(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
      // 2,000 changes of the count, but the log prints at most 20 lines a second.
      const countLines = server.lines.slice(from).filter((line) =>
        line.startsWith("active connections:")
      );
      assert(countLines.length < 200, `${countLines.length} log lines for 1,000 clients`);
    },
  );

  await t.step("half-close: everything sent is echoed, then EOF", async () => {
    const conn = await rawConnect(server.port);
    try {
      // Write it all and half-close before reading a single byte.
      const payload = randomBytes(256 * 1024);
      await writeAll(conn, payload);
      await conn.closeWrite();
      assertEquals(await readToEnd(conn), payload);
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("16 MiB, read while writing, comes back identical", async () => {
    const conn = await rawConnect(server.port);
    try {
      const payload = randomBytes(16 * 1024 * 1024);
      const sending = writeAll(conn, payload).then(() => conn.closeWrite());
      const echoed = await readToEnd(conn);
      await sending;
      assertEquals(echoed.length, payload.length);
      assertEquals(echoed, payload);
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("a slow client does not hold up the others", async () => {
    const slow = await rawConnect(server.port);
    try {
      await writeAll(slow, encode("half a messa"));
      const client = await runTask("lesson08-client", ["--port", port, "--message", "fast"]);
      assertEquals(client.stdout, 'Received "fast"\n');
      await slow.closeWrite();
      assertEquals(decode(await readToEnd(slow)), "half a messa");
    } finally {
      closeRaw(slow);
    }
  });

  await t.step("--clients N runs N clients at once and prints each wait", async () => {
    const client = await runTask("lesson08-client", [
      "--port",
      port,
      "--clients",
      "20",
      "--message",
      "hi 🌮",
    ]);
    assertEquals([client.code, client.stderr], [0, ""]);
    const lines = client.stdout.trimEnd().split("\n");
    assertEquals(lines.length, 21);
    for (const [i, line] of lines.slice(0, 20).entries()) {
      assertMatch(line, new RegExp(`^client ${i + 1}: Received "hi 🌮" after \\d+\\.\\d ms$`));
    }
    assertMatch(
      lines[20],
      /^20 clients, all echoed: waited \d+\.\d ms at least, \d+\.\d ms median, \d+\.\d ms at most$/,
    );
  });
});

test("lesson 08: --hold shows lesson 02's queue and lesson 08's lack of one", async () => {
  const slowest = (stdout: string) => Number(stdout.match(/(\d+\.\d) ms at most$/m)![1]);
  await using concurrent = await LessonServer.start("lesson08-server");
  const here = await runTask("lesson08-client", [
    "--port",
    String(concurrent.port),
    "--clients",
    "3",
    "--hold",
    "1",
  ]);
  assertEquals(here.code, 0, here.stderr);
  assert(slowest(here.stdout) < 900, here.stdout);

  await using iterative = await LessonServer.start("lesson02-server");
  const there = await runTask("lesson08-client", [
    "--port",
    String(iterative.port),
    "--clients",
    "3",
    "--hold",
    "1",
  ]);
  assertEquals(there.code, 0, there.stderr);
  // The third client's echo waited for the two before it to finish their hold.
  assert(slowest(there.stdout) >= 1900, there.stdout);
});

test("lesson 08: over --max-connections a client gets 'server busy'", async () => {
  await using server = await LessonServer.start("lesson08-server", ["--max-connections", "2"]);
  const conns = await connectMany(server.port, 2);
  try {
    assert(await server.waitForLine("active connections: 2"));
    const third = await rawConnect(server.port);
    try {
      assertEquals(decode(await readToEnd(third)), "server busy\n");
    } finally {
      closeRaw(third);
    }
    assert(await server.waitForLine(/^turned away 127\.0\.0\.1:\d+: server busy$/));
    // The two connected clients are still served.
    await writeAll(conns[0], encode("still here"));
    assertEquals(decode(await readExactly(conns[0], 10)), "still here");
    // One leaves, and there is room again.
    const from = server.lines.length;
    closeRaw(conns[1]);
    assert(await waitForLineAfter(server, from, "active connections: 1"));
    const client = await runTask("lesson08-client", ["--port", String(server.port)]);
    assertEquals(client.stdout, 'Received "Hello, world"\n');
  } finally {
    conns.forEach(closeRaw);
  }
  const result = await server.stop("SIGINT");
  assertMatch(result.stdout, /^served 3 connections \(1 turned away\), echoed 22 bytes$/m);
});

test("lesson 08: --idle-timeout closes quiet connections with a message", async () => {
  await using server = await LessonServer.start("lesson08-server", ["--idle-timeout", "1"]);
  const quiet = await rawConnect(server.port);
  const chatty = await rawConnect(server.port);
  try {
    const started = Date.now();
    // The chatty client sends something every 300 ms: it is never idle.
    const chatting = (async () => {
      for (let i = 0; i < 6; i++) {
        await writeAll(chatty, encode("."));
        assertEquals(decode(await readExactly(chatty, 1)), ".");
        await sleep(300);
      }
    })();
    assertEquals(decode(await readToEnd(quiet, 5_000)), "idle for 1 s: closing\n");
    const waited = Date.now() - started;
    assert(waited >= 950 && waited < 3_000, `closed after ${waited} ms`);
    await chatting;
    assert(await server.waitForLine(/^closed idle connection from 127\.0\.0\.1:\d+$/));
    assertEquals(server.lines.filter((line) => line.startsWith("closed idle")).length, 1);
  } finally {
    closeRaw(quiet);
    closeRaw(chatty);
  }
});

test("lesson 08: Ctrl-C shuts down gracefully, with clients connected", async (t) => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    await t.step(signal, async () => {
      await using server = await LessonServer.start("lesson08-server");
      const idle = await rawConnect(server.port);
      const done = await rawConnect(server.port);
      try {
        await writeAll(done, encode("abc"));
        assertEquals(decode(await readExactly(done, 3)), "abc");
        assert(await server.waitForLine("active connections: 2"));
        const started = Date.now();
        const result = await server.stop(signal);
        assert(Date.now() - started < 3_000, "shut down within the grace period");
        assertEquals([result.code, result.timedOut, result.stderr], [0, false, ""]);
        assertEquals(result.stdout.split("\n").slice(-3), [
          "shutting down: 2 connections open",
          "served 2 connections, echoed 3 bytes",
          "",
        ]);
        // Both clients see the connection closed.
        assertEquals(await readToEnd(idle), new Uint8Array());
        assertEquals(await readToEnd(done), new Uint8Array());
      } finally {
        closeRaw(idle);
        closeRaw(done);
      }
    });
  }

  await t.step("a client that never reads cannot keep the server alive", async () => {
    await using server = await LessonServer.start("lesson08-server");
    const stuck = await rawConnect(server.port);
    try {
      // Send 8 MiB and read nothing: the server's echo fills the buffers and its
      // write waits, forever if it could.
      const sending = writeAll(stuck, randomBytes(8 * 1024 * 1024)).catch(() => {});
      await sleep(300);
      const started = Date.now();
      const result = await server.stop("SIGINT");
      assert(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
      assertEquals(result.code, 0);
      // Its echo could not finish: the summary says so.
      assertMatch(
        result.stdout,
        /^served 1 connection \(1 cut off at shutdown\), echoed \d+ bytes$/m,
      );
      closeRaw(stuck);
      await sending;
    } finally {
      closeRaw(stuck);
    }
  });
});

test("lesson 08: 300 connections reset before accept do not stall the next client", async () => {
  await using server = await RawServer.start("lesson08-server", ["--quiet"]);
  // Pause the server, so the 300 connections wait in its accept queue and
  // reset there; then a good client; then let the server go on.
  server.signal("SIGSTOP");
  try {
    await resetConnections(server.port, 300);
  } finally {
    server.signal("SIGCONT");
  }
  const started = Date.now();
  const client = await runTask("lesson08-client", ["--port", String(server.port)]);
  const waited = Date.now() - started;
  assertEquals([client.code, client.stdout, client.stderr], [0, 'Received "Hello, world"\n', ""]);
  // Each failed accept used to sleep 100 ms: 300 of them made this client wait 30 s.
  assert(waited < 5_000, `the good client waited ${waited} ms`);
  const result = await server.stop("SIGINT");
  assertMatch(result.stdout, /^could not accept a connection: /m, "the resets reached accept");
});

test("lesson 08: out of file descriptors, the server lowers its limit and goes on", async () => {
  // At most 64 descriptors: Deno itself uses about 25, so about 40 connections fit.
  await using server = await RawServer.start("lesson08-server", ["--quiet"], { nofile: 64 });
  const conns = await connectMany(server.port, 60, 10);
  try {
    assert(
      await server.waitFor(/^out of file descriptors with \d+ connections open: serving at most/m),
      server.stdout,
    );
  } finally {
    conns.forEach(closeRaw);
  }
  // Everyone left: a new client is served as usual (retry while the
  // server still closes the old connections).
  let client = await runTask("lesson08-client", ["--port", String(server.port)]);
  for (let i = 0; i < 20 && client.code !== 0; i++) {
    await sleep(100);
    client = await runTask("lesson08-client", ["--port", String(server.port)]);
  }
  assertEquals([client.code, client.stdout], [0, 'Received "Hello, world"\n'], client.stderr);
  const result = await server.stop("SIGTERM");
  assertEquals([result.code, result.stderr], [0, ""]);
  assertMatch(result.stdout, /^served \d+ connections/m);
});

Deno.test("lesson 08: a fast sender borrows a big buffer, and gives it back when it pauses", () => {
  const buffers = new ReadBuffers(1);
  const [smallA, smallB] = [new Uint8Array(SMALL_BUFFER), new Uint8Array(SMALL_BUFFER)];
  // A's read filled its small buffer: it borrows the one big buffer.
  const bigA = buffers.next(smallA, SMALL_BUFFER, smallA);
  assertEquals([bigA.length, buffers.lent], [BIG_BUFFER, 1]);
  // B fills its small buffer too, but the only big one is lent out: B stays small.
  assertEquals(buffers.next(smallB, SMALL_BUFFER, smallB), smallB);
  // A keeps it while its reads fill it...
  assertEquals(buffers.next(bigA, BIG_BUFFER, smallA), bigA);
  // ...and gives it back with the first read that does not: the socket is
  // empty, and the next read, which may wait for ever, gets the small buffer.
  assertEquals(buffers.next(bigA, BIG_BUFFER - 1, smallA), smallA);
  assertEquals(buffers.lent, 0);
  // A read that does not fill the small buffer keeps it small.
  assertEquals(buffers.next(smallB, 100, smallB), smallB);
  // Now B gets the same big buffer: no new allocation.
  assertEquals(buffers.next(smallB, SMALL_BUFFER, smallB), bigA);
});

test("lesson 08: 200 connections that streamed 1 MiB each and went idle hold little memory", async () => {
  await using server = await RawServer.start("lesson08-server", ["--quiet"]);
  const before = await server.rssKiB();
  const conns = await connectMany(server.port, 200, 50);
  try {
    // 1 MiB each, echoed while it is sent; then every connection stays open, quiet.
    const payload = randomBytes(1024 * 1024);
    await Promise.all(conns.map(async (conn) => {
      const [echo] = await Promise.all([
        readExactly(conn, payload.length),
        writeAll(conn, payload),
      ]);
      assertEquals(echo.length, payload.length);
    }));
    await sleep(500);
    const perConnection = (await server.rssKiB() - before) / conns.length;
    // Each connection used to keep a 256 KiB buffer (and more garbage):
    // about 350 KiB each here. Now they share at most 32 big buffers.
    assert(perConnection < 150, `${perConnection.toFixed(1)} KiB per idle connection`);
  } finally {
    conns.forEach(closeRaw);
  }
  // When they have closed, little of that memory is left (it was 70 MiB).
  await sleep(500);
  const left = (await server.rssKiB() - before) / 1024;
  assert(left < 40, `${left.toFixed(1)} MiB more than before the connections`);
});

test("lesson 08: shutdown lets busy echoes finish, and counts the ones it cuts off", async () => {
  await using server = await LessonServer.start("lesson08-server", ["--quiet"]);
  const streaming = await rawConnect(server.port);
  const stuck = await rawConnect(server.port);
  const idle = await rawConnect(server.port);
  try {
    // `stuck` sends 8 MiB and reads nothing: its echo can never finish.
    const stuckSending = writeAll(stuck, randomBytes(8 * 1024 * 1024)).catch(() => {});
    // `streaming` sends 8 MiB in 64 KiB pieces and reads the echo as it comes.
    const payload = randomBytes(8 * 1024 * 1024);
    const echo = readToEnd(streaming);
    await writeAll(streaming, payload.subarray(0, 1024 * 1024));
    // SIGTERM in the middle of the stream...
    const stopping = server.stop("SIGTERM");
    for (let sent = 1024 * 1024; sent < payload.length; sent += 64 * 1024) {
      await writeAll(streaming, payload.subarray(sent, sent + 64 * 1024));
    }
    await streaming.closeWrite();
    // ...and it still gets all of its echo, then EOF.
    const echoed = await echo;
    assertEquals(echoed.length, payload.length);
    assertEquals(echoed, payload);
    const result = await stopping;
    assertEquals([result.code, result.stderr], [0, ""]);
    assertEquals(result.stdout.split("\n").slice(-3, -2), ["shutting down: 3 connections open"]);
    // The idle one was closed at once, the stuck one cut off after the grace period.
    assertMatch(
      result.stdout,
      /^served 3 connections \(1 cut off at shutdown\), echoed \d+ bytes$/m,
    );
    assertEquals(await readToEnd(idle), new Uint8Array());
    closeRaw(stuck);
    await stuckSending;
  } finally {
    closeRaw(streaming);
    closeRaw(stuck);
    closeRaw(idle);
  }
});

/**
 * A fake server for the client tests: `answer` gets each connection, and the
 * listener is closed at the end.
 */
async function withFakeServer(
  answer: (conn: Deno.TcpConn) => Promise<void>,
  run: (port: number) => Promise<void>,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      served.push(answer(conn).catch(() => {}).finally(() => closeRaw(conn)));
    }
  })();
  try {
    await run(listener.addr.port);
  } finally {
    listener.close();
    await accepting;
    await Promise.all(served);
  }
}

/** Reads what the client sends, up to `n` bytes (or EOF). */
async function readSome(conn: Deno.TcpConn, n: number): Promise<Uint8Array> {
  const data = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const count = await readWithTimeout(conn, data.subarray(got), 5_000, "the client");
    if (count === null) break;
    got += count;
  }
  return data.subarray(0, got);
}

test("lesson 08: the client reports a short, wrong or slow echo", async (t) => {
  const client = (port: number, ...args: string[]) =>
    runTask("lesson08-client", ["--port", String(port), ...args]);

  await t.step("the server closes at once", async () => {
    await withFakeServer(async () => {}, async (port) => {
      const result = await client(port);
      assertEquals([result.code, result.stdout], [1, ""]);
      assertMatch(
        result.stderr,
        /^(the server closed the connection after echoing 0 of 12 bytes|connection reset by peer .*)\n$/,
      );
    });
  });

  await t.step("the server echoes half", async () => {
    await withFakeServer(async (conn) => {
      const got = await readSome(conn, 12);
      await writeAll(conn, got.subarray(0, 6));
    }, async (port) => {
      const result = await client(port);
      assertEquals([result.code, result.stdout, result.stderr], [
        1,
        "",
        "the server closed the connection after echoing 6 of 12 bytes\n",
      ]);
    });
  });

  await t.step("the server echoes something else", async () => {
    await withFakeServer(async (conn) => {
      await readSome(conn, 12);
      await writeAll(conn, encode("Hello, World"));
    }, async (port) => {
      const result = await client(port);
      assertEquals([result.code, result.stdout, result.stderr], [
        1,
        "",
        'got "Hello, World" instead of the echo\n',
      ]);
    });
  });

  await t.step("one of several clients gets a short echo", async () => {
    let count = 0;
    await withFakeServer(async (conn) => {
      const got = await readSome(conn, 12);
      await writeAll(conn, ++count === 2 ? got.subarray(0, 5) : got);
    }, async (port) => {
      const result = await client(port, "--clients", "3");
      assertEquals(result.code, 1);
      assertMatch(
        result.stdout,
        /^client \d: failed after \d+\.\d ms: the server closed the connection after echoing 5 of 12 bytes$/m,
      );
      assertMatch(result.stdout, /^3 clients, 2 echoed correctly: /m);
    });
  });

  await t.step("a server that sends one byte a second hits --timeout", async () => {
    await withFakeServer(async (conn) => {
      await readSome(conn, 12);
      for (let i = 0; i < 10; i++) {
        await writeAll(conn, encode("H"));
        await sleep(1000);
      }
    }, async (port) => {
      const started = Date.now();
      const result = await client(port, "--timeout", "2");
      const took = Date.now() - started;
      assertEquals([result.code, result.stdout, result.stderr], [
        1,
        "",
        "gave up after 2 s waiting for the echo\n",
      ]);
      assert(took < 6_000, `took ${took} ms`);
    });
  });
});

Deno.test("lesson 08: Ctrl-C to deno task and the server, 10 times: always the summary, exit 0", async () => {
  // A terminal's Ctrl-C reaches `deno task` and the server, and deno task
  // passes its copy on: the server gets SIGINT twice, right after an exchange.
  for (let i = 1; i <= 10; i++) {
    const result = await pressCtrlC("lesson08-server", [], async (port) => {
      const conn = await rawConnect(port);
      try {
        await writeAll(conn, encode("hello"));
        await conn.closeWrite();
        assertEquals(decode(await readToEnd(conn, 5_000)), "hello");
      } finally {
        closeRaw(conn);
      }
    });
    assertEquals(result.code, 0, `try ${i}: exit code (${JSON.stringify(result)})`);
    assertMatch(result.stdout, /^served 1 connection, echoed 5 bytes$/m, `try ${i}: no summary`);
    assert(!result.stdout.includes("again"), `try ${i}: one Ctrl-C taken for two`);
  }
});
