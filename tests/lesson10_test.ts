import { assert, assertEquals, assertMatch } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import {
  closeRaw,
  encode,
  LessonServer,
  randomBytes,
  rawConnect,
  readExactly,
  readToEnd,
  runTask,
} from "./_helpers.ts";

/** The lines of the shutdown summary: `worker N served K connections`, by worker number. */
function servedPerWorker(stdout: string): number[] {
  return [...stdout.matchAll(/^worker (\d+) served (\d+) connections?$/gm)]
    .map((match) => Number(match[2]));
}

Deno.test("lesson 10: every core", async (t) => {
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
    const many = await runTask("lesson10-client", ["--port", port, "--clients", "20"]);
    assertEquals([many.code, many.stdout], [0, '20 clients, all echoed "Hello, world"\n']);
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
        assertEquals(lines.slice(2, 3), ["shutting down: 50 connections open"]);
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

Deno.test("lesson 10: --workers 1 and SIGTERM", async () => {
  await using server = await LessonServer.start("lesson10-server", ["--workers", "1"]);
  const client = await runTask("lesson10-client", ["--port", String(server.port)]);
  assertEquals(client.stdout, 'Received "Hello, world"\n');
  const result = await server.stop("SIGTERM");
  assertEquals(result.code, 0);
  assertEquals(result.stdout.split("\n").slice(1), [
    "1 worker sharing the port, each with its own event loop",
    "shutting down: 0 connections open",
    "worker 1 served 1 connection",
    "served 1 connection, echoed 12 bytes",
    "",
  ]);
});

Deno.test("lesson 10: a second server on the same port fails instead of sharing it", async () => {
  await using first = await LessonServer.start("lesson10-server", ["--workers", "2"]);
  const second = await runTask("lesson10-server", ["--port", String(first.port), "--workers", "2"]);
  assertEquals(second.code, 1);
  assertEquals(
    second.stderr,
    `port ${first.port} is already in use: is another server running? stop it, or try --port 0\n`,
  );
});

Deno.test("lesson 10: --workers must be at least 1", async () => {
  const result = await runTask("lesson10-server", ["--workers", "0"]);
  assertEquals([result.code, result.stderr], [
    2,
    '--workers must be a whole number from 1 to 256, got "0"\n',
  ]);
});
