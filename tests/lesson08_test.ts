import { assert, assertEquals, assertMatch } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { readWithTimeout } from "../lib/io.ts";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  randomBytes,
  rawConnect,
  readExactly,
  readToEnd,
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

Deno.test("lesson 08: many clients at once", async (t) => {
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

Deno.test("lesson 08: --hold shows lesson 02's queue and lesson 08's lack of one", async () => {
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

Deno.test("lesson 08: over --max-connections a client gets 'server busy'", async () => {
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

Deno.test("lesson 08: --idle-timeout closes quiet connections with a message", async () => {
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

Deno.test("lesson 08: Ctrl-C shuts down gracefully, with clients connected", async (t) => {
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
      assertMatch(result.stdout, /^served 1 connection, echoed \d+ bytes$/m);
      closeRaw(stuck);
      await sending;
    } finally {
      closeRaw(stuck);
    }
  });
});
