import { assert, assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { writeAll } from "../lib/io.ts";
import {
  closeRaw,
  encode,
  LessonServer,
  randomBytes,
  rawConnect,
  readToEnd,
  runTask,
  sleep,
} from "./_helpers.ts";

test("lesson 02: echo", async (t) => {
  await using server = await LessonServer.start("lesson02-server");
  const port = String(server.port);

  await t.step("the default message is echoed and printed JSON-quoted", async () => {
    const client = await runTask("lesson02-client", ["--port", port]);
    assertEquals([client.code, client.stdout, client.stderr], [0, 'Received "Hello, world"\n', ""]);
    assert(await server.waitForLine(/^closed connection from /));
    const log = server.lines.slice(1).map((line) => line.replace(/127\.0\.0\.1:\d+/, "CLIENT"));
    assertEquals(log, [
      "connection from CLIENT",
      "echoed 12 bytes to CLIENT",
      "closed connection from CLIENT",
    ]);
  });

  await t.step("--message with quotes and non-ASCII text", async () => {
    const client = await runTask("lesson02-client", ["--port", port, "--message", 'say "hi" 🌮']);
    assertEquals(client.stdout, 'Received "say \\"hi\\" 🌮"\n');
  });

  await t.step("the client's 16 MiB random payload comes back identical", async () => {
    const client = await runTask("lesson02-client", [
      "--port",
      port,
      "--size",
      String(16 * 1024 * 1024),
    ]);
    assertEquals([client.code, client.stdout], [
      0,
      "Received 16777216 bytes, identical to what was sent\n",
    ]);
  });

  await t.step(
    "raw binary (every byte value) from a test socket is echoed byte for byte",
    async () => {
      const conn = await rawConnect(server.port);
      try {
        const payload = Uint8Array.from({ length: 256 * 64 }, (_, i) => i % 256);
        await writeAll(conn, payload);
        await conn.closeWrite();
        assertEquals(await readToEnd(conn), payload);
      } finally {
        closeRaw(conn);
      }
    },
  );

  await t.step("16 MiB random bytes from a test socket, written while reading", async () => {
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

  await t.step(
    "a second client waits while the first is connected (iterative server)",
    async () => {
      const first = await rawConnect(server.port);
      try {
        await writeAll(first, encode("x"));
        const second = runTask("lesson02-client", ["--port", port, "--message", "second"]);
        let done = false;
        second.then(() => done = true);
        await sleep(700);
        assertEquals(done, false, "the second client should still be waiting");
        await first.closeWrite();
        assertEquals(await readToEnd(first), encode("x"));
        const result = await second;
        assertEquals(result.stdout, 'Received "second"\n');
      } finally {
        closeRaw(first);
      }
    },
  );
});

test("lesson 02: a silent client is closed after --idle-timeout, the server goes on", async () => {
  await using server = await LessonServer.start("lesson02-server", ["--idle-timeout", "1"]);
  const conn = await rawConnect(server.port);
  try {
    const started = Date.now();
    assertEquals(await readToEnd(conn, 5_000), new Uint8Array(), "closed with nothing sent");
    assert(Date.now() - started >= 900, "not before the timeout");
    assert(
      await server.waitForLine(/failed after 0 bytes: timed out after 1 s waiting for the client$/),
    );
  } finally {
    closeRaw(conn);
  }
  const client = await runTask("lesson02-client", ["--port", String(server.port)]);
  assertEquals(client.stdout, 'Received "Hello, world"\n');
});
