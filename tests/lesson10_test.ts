import { assert, assertEquals, assertMatch } from "@std/assert";
import { writeAll } from "../lib/io.ts";
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
import { RawServer } from "./_raw_server.ts";
import { test } from "./_checks.ts";

/** The lines of the shutdown summary: `worker N served K connections`, by worker number. */
function servedPerWorker(stdout: string): number[] {
  return [...stdout.matchAll(/^worker (\d+) served (\d+) connections?$/gm)]
    .map((match) => Number(match[2]));
}

test("lesson 10: every core", async (t) => {
  await using server = await LessonServer.start("lesson10-server", ["--workers", "2"]);
  const port = String(server.port);

  await t.step("--port 0: all workers listen on the one port the first was given", async () => {
    const banner = "2 workers sharing the port, each with its own event loop";
    assertEquals(await server.waitForLine(banner), true, "the workers report in");
    assertMatch(server.lines[0], /^listening on 127\.0\.0\.1:\d+$/);
    assertEquals(server.lines[1], banner);
  });

  await t.step("the lesson's client and server as a pair", async () => {
    const client = await runTask("lesson10-client", ["--port", port]);
    assertEquals([client.code, client.stdout, client.stderr], [0, 'Received "Hello, world"\n', ""]);
    // Lesson 08's client, on lesson 10's port.
    const many = await runTask("lesson10-client", ["--port", port, "--clients", "20"]);
    assertEquals(many.code, 0, many.stderr);
    assertMatch(many.stdout, /^client 20: Received "Hello, world" after \d+\.\d ms$/m);
    assertMatch(many.stdout, /^20 clients, all echoed: waited /m);
  });

  await t.step("1 MiB of random bytes comes back identical", async () => {
    const conn = await rawConnect(server.port);
    try {
      const payload = randomBytes(1024 * 1024);
      const sending = writeAll(conn, payload).then(() => conn.closeWrite());
      const echoed = await readToEnd(conn);
      await sending;
      assertEquals(echoed, payload);
    } finally {
      closeRaw(conn);
    }
  });

  await t.step(
    "50 connections are spread over both workers; SIGINT prints who served what",
    async () => {
      const conns: Deno.TcpConn[] = [];
      try {
        for (let i = 0; i < 50; i++) conns.push(await rawConnect(server.port));
        // An echo on each proves that a worker has accepted it.
        await Promise.all(conns.map(async (conn, i) => {
          const message = encode(`${i}\n`);
          await writeAll(conn, message);
          assertEquals(await readExactly(conn, message.length), message);
        }));
        const result = await server.stop("SIGINT");
        assertEquals(result.code, 0, result.stderr);
        assertEquals(result.stderr, "");
        const lines = result.stdout.trimEnd().split("\n");
        assertEquals(
          lines.filter((line) => line.startsWith("shutting down")),
          ["shutting down: 50 connections open"],
        );
        const perWorker = servedPerWorker(result.stdout);
        assertEquals(perWorker.length, 2, result.stdout);
        // 1 + 20 + 1 + 50 connections in all. Both workers got some: the kernel
        // hashes each connection's source port, so all 72 landing on one
        // worker has a chance of 2 in 2^72.
        assertEquals(perWorker[0] + perWorker[1], 72, result.stdout);
        assert(perWorker.every((n) => n > 0), result.stdout);
        assertMatch(lines.at(-1)!, /^served 72 connections, echoed \d+ bytes$/);
        // The server closed every connection as it stopped.
        for (const conn of conns) assertEquals(await readToEnd(conn, 5_000), new Uint8Array());
      } finally {
        conns.forEach(closeRaw);
      }
    },
  );
});

test("lesson 10: --workers 1 and SIGTERM", async () => {
  await using server = await LessonServer.start("lesson10-server", ["--workers", "1"]);
  const client = await runTask("lesson10-client", ["--port", String(server.port)]);
  assertEquals(client.stdout, 'Received "Hello, world"\n');
  assert(await server.waitForLine("worker 1: active connections: 0"));
  const result = await server.stop("SIGTERM");
  assertEquals(result.code, 0);
  assertEquals(result.stdout.split("\n").slice(1), [
    "1 worker sharing the port, each with its own event loop",
    "worker 1: active connections: 1",
    "worker 1: active connections: 0",
    "shutting down: 0 connections open",
    "worker 1 served 1 connection",
    "served 1 connection, echoed 12 bytes",
    "",
  ]);
});

test("lesson 10: a second server on the same port fails instead of sharing it", async () => {
  await using first = await LessonServer.start("lesson10-server", ["--workers", "2"]);
  const second = await runTask("lesson10-server", ["--port", String(first.port), "--workers", "2"]);
  assertEquals(second.code, 1);
  assertEquals(
    second.stderr,
    `port ${first.port} is already in use: is another server running? stop it, or try --port 0\n`,
  );
});

test("lesson 10: --workers must be at least 1", async () => {
  const result = await runTask("lesson10-server", ["--workers", "0"]);
  assertEquals([result.code, result.stderr], [
    2,
    '--workers must be a whole number from 1 to 256, got "0"\n',
  ]);
});

test("lesson 10: lesson 08's limits, in every worker", async (t) => {
  await t.step("--idle-timeout closes a silent connection, and one that never reads", async () => {
    await using server = await LessonServer.start("lesson10-server", [
      "--workers",
      "2",
      "--idle-timeout",
      "1",
      "--quiet",
    ]);
    const silent = await rawConnect(server.port);
    const stuck = await rawConnect(server.port);
    try {
      // `stuck` sends 16 MiB and never reads: the server's write makes no
      // progress, and after the idle timeout the connection is closed.
      const started = Date.now();
      const sending = writeAll(stuck, randomBytes(16 * 1024 * 1024)).then(
        () => "sent it all",
        (error) => error.name,
      );
      assertEquals(decode(await readToEnd(silent, 5_000)), "idle for 1 s: closing\n");
      assertEquals(await sending, "ConnectionReset", "the server closed the stuck connection");
      const took = Date.now() - started;
      assert(took < 5_000, `took ${took} ms`);
    } finally {
      closeRaw(silent);
      closeRaw(stuck);
    }
    const result = await server.stop("SIGINT");
    assertMatch(result.stdout, /^served 2 connections \(2 closed for idling\), echoed \d+ bytes$/m);
  });

  await t.step("--max-connections is for the whole server", async () => {
    await using server = await LessonServer.start("lesson10-server", [
      "--workers",
      "1",
      "--max-connections",
      "1",
    ]);
    const first = await rawConnect(server.port);
    try {
      assert(await server.waitForLine("worker 1: active connections: 1"));
      const client = await runTask("lesson10-client", ["--port", String(server.port)]);
      assertEquals([client.code, client.stderr], [1, 'got "server busy\\n" instead of the echo\n']);
    } finally {
      closeRaw(first);
    }
  });

  await t.step("300 connections reset before accept do not stall the next client", async () => {
    await using server = await RawServer.start("lesson10-server", ["--workers", "2", "--quiet"]);
    server.signal("SIGSTOP");
    try {
      await resetConnections(server.port, 300);
    } finally {
      server.signal("SIGCONT");
    }
    const started = Date.now();
    const client = await runTask("lesson10-client", ["--port", String(server.port)]);
    assertEquals([client.code, client.stdout], [0, 'Received "Hello, world"\n'], client.stderr);
    assert(Date.now() - started < 5_000, `the good client waited ${Date.now() - started} ms`);
    const result = await server.stop("SIGINT");
    assertMatch(result.stdout, /could not accept a connection: /, "the resets reached accept");
  });

  await t.step("out of file descriptors, the workers lower their limits and go on", async () => {
    await using server = await RawServer.start("lesson10-server", ["--workers", "2", "--quiet"], {
      nofile: 80,
    });
    const conns: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 60; i++) conns.push(await rawConnect(server.port));
      assert(
        await server.waitFor(/out of file descriptors with \d+ connections open/),
        server.stdout,
      );
    } finally {
      conns.forEach(closeRaw);
    }
    let client = await runTask("lesson10-client", ["--port", String(server.port)]);
    for (let i = 0; i < 20 && client.code !== 0; i++) {
      await sleep(100);
      client = await runTask("lesson10-client", ["--port", String(server.port)]);
    }
    assertEquals([client.code, client.stdout], [0, 'Received "Hello, world"\n'], client.stderr);
    const result = await server.stop("SIGTERM");
    assertEquals([result.code, result.stderr], [0, ""]);
  });
});

test("lesson 10: --work computes before each echo, and the echo is still exact", async () => {
  await using server = await LessonServer.start("lesson10-server", [
    "--workers",
    "2",
    "--work",
    "2000",
    "--quiet",
  ]);
  const conn = await rawConnect(server.port);
  try {
    // 20 round trips of 2 ms of hashing each: at least 40 ms, however fast the machine.
    const started = performance.now();
    for (let i = 0; i < 20; i++) {
      const message = encode(`message ${i}`);
      await writeAll(conn, message);
      assertEquals(await readExactly(conn, message.length), message);
    }
    const took = performance.now() - started;
    assert(took >= 40, `20 round trips with --work 2000 took only ${took.toFixed(1)} ms`);
  } finally {
    closeRaw(conn);
  }
});
