import { assert, assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { writeAll } from "../lib/io.ts";
import {
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

test("lesson 03: capitalize", async (t) => {
  await using server = await LessonServer.start("lesson03-server");
  const port = String(server.port);

  await t.step("a 4-byte character: bytes and characters counted", async () => {
    const client = await runTask("lesson03-client", [
      "--port",
      port,
      "--message",
      "I am hungry for 🌮",
    ]);
    assertEquals(client.code, 0);
    assertEquals(
      client.stdout,
      'Sent     "I am hungry for 🌮" (20 bytes, 17 characters)\n' +
        'Received "I AM HUNGRY FOR 🌮" (20 bytes, 17 characters)\n',
    );
  });

  await t.step("piped stdin: straße becomes STRASSE (one character more)", async () => {
    const client = await runTask("lesson03-client", ["--port", port], { stdin: "straße\n" });
    assertEquals(
      client.stdout,
      'Sent     "straße" (7 bytes, 6 characters)\nReceived "STRASSE" (7 bytes, 7 characters)\n',
    );
  });

  await t.step(
    "uppercasing can change the byte count: ﬁ (3 bytes) becomes FI (2 bytes)",
    async () => {
      const client = await runTask("lesson03-client", ["--port", port, "--message", "ﬁ"]);
      assertEquals(
        client.stdout,
        'Sent     "ﬁ" (3 bytes, 1 character)\nReceived "FI" (2 bytes, 2 characters)\n',
      );
    },
  );

  await t.step("a client that does not half-close gets a reply to each chunk", async () => {
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, encode("hello"));
      assertEquals(decode(await readExactly(conn, 5)), "HELLO");
      await writeAll(conn, encode(" again"));
      assertEquals(decode(await readExactly(conn, 6)), " AGAIN");
      await conn.closeWrite();
      assertEquals(await readToEnd(conn), new Uint8Array(), "then EOF");
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("a character split across writes is decoded whole", async () => {
    const conn = await rawConnect(server.port);
    try {
      const taco = encode("é🌮");
      for (const piece of [taco.subarray(0, 1), taco.subarray(1, 3), taco.subarray(3)]) {
        await writeAll(conn, piece);
        await sleep(50); // separate TCP segments, so separate reads
      }
      await conn.closeWrite();
      assertEquals(decode(await readToEnd(conn)), "É🌮");
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("invalid UTF-8 gets a one-line error, and the server keeps serving", async () => {
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, new Uint8Array([0x61, 0xff, 0x62]));
      await conn.closeWrite();
      assertEquals(
        decode(await readToEnd(conn)),
        "error: the text you sent is not valid UTF-8 text\n",
      );
    } finally {
      closeRaw(conn);
    }
    assert(await server.waitForLine(/sent bytes that are not UTF-8: replied with an error$/));
    const client = await runTask("lesson03-client", ["--port", port, "--message", "still here"]);
    assertEquals(client.code, 0);
    assert(client.stdout.includes('Received "STILL HERE"'));
  });

  await t.step("text that stops mid-character is an error too", async () => {
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, encode("🌮").subarray(0, 2));
      await conn.closeWrite();
      assertEquals(
        decode(await readToEnd(conn)),
        "error: the text you sent is not valid UTF-8 text\n",
      );
    } finally {
      closeRaw(conn);
    }
  });
});
