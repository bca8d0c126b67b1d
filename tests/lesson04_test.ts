import { assert, assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { writeAll } from "../lib/io.ts";
import {
  closeRaw,
  encode,
  LessonServer,
  rawConnect,
  readToEnd,
  runTask,
  sleep,
} from "./_helpers.ts";

test("lesson 04: addresses and ports", async (t) => {
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

/**
 * Runs the lesson 04 client (`--timeout 1`) against a raw server on a free
 * port that runs `handle` for its one connection, then closes it.
 */
async function againstServer(handle: (conn: Deno.TcpConn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      await handle(conn);
    } catch {
      // the client gave up and closed: what the test checks is the client
    } finally {
      closeRaw(conn);
    }
  })();
  try {
    const started = Date.now();
    const client = await runTask("lesson04-client", [
      "--port",
      String(listener.addr.port),
      "--timeout",
      "1",
    ]);
    return { ...client, ms: Date.now() - started };
  } finally {
    listener.close();
    await serving;
  }
}

test("lesson 04: the client against servers that misbehave", async (t) => {
  await t.step("a byte every 300 ms, never a LF: one deadline for the whole answer", async () => {
    const client = await againstServer(async (conn) => {
      for (let i = 0; i < 30; i++) { // 9 s at most
        await writeAll(conn, encode("y"));
        await sleep(300);
      }
    });
    assertEquals([client.code, client.stderr], [
      1,
      "gave up after 1 s waiting for the server's answer\n",
    ]);
    assert(client.ms < 6_000, `took ${client.ms} ms to give up after 1 s`);
  });
  await t.step("an answer without its LF, then EOF: cut short, not an answer", async () => {
    const client = await againstServer(async (conn) => {
      await writeAll(conn, encode("you are"));
      await conn.closeWrite();
      await readToEnd(conn, 5_000);
    });
    assertEquals([client.code, client.stderr], [
      1,
      'the server closed the connection in the middle of a line: "you are" came without ' +
      "its LF (a truncated message)\n",
    ]);
    assert(!client.stdout.includes("server says"), client.stdout);
  });
  await t.step("terminal control codes in the answer are shown as codes", async () => {
    const client = await againstServer(async (conn) => {
      await writeAll(conn, encode("\x1b]0;owned\x07hi\r\u202eevil\n"));
      await readToEnd(conn, 5_000);
    });
    assertEquals(client.code, 0, client.stderr);
    assertEquals(
      client.stdout.split("\n")[1],
      "server says: \\x1b]0;owned\\x07hi\\x0d\\u202eevil",
    );
  });
  await t.step("an answer, then the server never closes: the goodbye has a deadline", async () => {
    const client = await againstServer(async (conn) => {
      await writeAll(conn, encode("you are here\n"));
      await sleep(3_000); // reads nothing, closes nothing (the client gives up after 1 s)
    });
    assertEquals(client.stdout.split("\n")[1], "server says: you are here");
    assertEquals([client.code, client.stderr], [
      1,
      "gave up after 1 s waiting for the server to close\n",
    ]);
  });
});
