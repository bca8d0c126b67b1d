import { assert, assertEquals } from "@std/assert";
import { closeRaw, LessonServer, rawConnect, readToEnd, runTask } from "./_helpers.ts";

Deno.test("lesson 04: addresses and ports", async (t) => {
  await using server = await LessonServer.start("lesson04-server");
  const port = String(server.port);

  await t.step("the port the client reports is the port the server saw", async () => {
    const client = await runTask("lesson04-client", ["--port", port]);
    assertEquals(client.code, 0);
    const [local, says] = client.stdout.trimEnd().split("\n");
    const mine = local.match(/^local 127\.0\.0\.1:(\d+) -> remote 127\.0\.0\.1:(\d+)$/);
    if (!mine) throw new Error(`unexpected first line: ${local}`);
    assertEquals(mine[2], port);
    assertEquals(says, `server says: you are 127.0.0.1:${mine[1]}, I am 127.0.0.1:${port}`);
    assert(await server.waitForLine(`closed connection from 127.0.0.1:${mine[1]}`));
    assert(server.lines.includes(`connection from 127.0.0.1:${mine[1]} to 127.0.0.1:${port}`));
  });

  await t.step("--count 3 uses three different ephemeral ports", async () => {
    const client = await runTask("lesson04-client", ["--port", port, "--count", "3"]);
    const locals = [...client.stdout.matchAll(/^#\d local 127\.0\.0\.1:(\d+)/gm)].map((m) => m[1]);
    const seen = [...client.stdout.matchAll(/^#\d server says: you are 127\.0\.0\.1:(\d+),/gm)].map(
      (m) => m[1],
    );
    assertEquals(locals.length, 3);
    assertEquals(new Set(locals).size, 3);
    assertEquals(seen, locals);
  });

  await t.step("--hold keeps the connection open, then closes it", async () => {
    const started = Date.now();
    const client = await runTask("lesson04-client", ["--port", port, "--hold", "0.5"]);
    assert(Date.now() - started >= 500);
    assert(client.stdout.includes("holding the connection open for 0.5 s"));
  });

  await t.step(
    "the server replies and keeps the connection open until the client closes",
    async () => {
      const conn = await rawConnect(server.port);
      try {
        await conn.closeWrite();
        const reply = new TextDecoder().decode(await readToEnd(conn));
        assertEquals(
          reply,
          `you are ${conn.localAddr.hostname}:${conn.localAddr.port}, I am 127.0.0.1:${port}\n`,
        );
      } finally {
        closeRaw(conn);
      }
    },
  );
});
