import { assert, assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { writeAll } from "../lib/io.ts";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  rawConnect,
  readToEnd,
  runTask,
  sleep,
} from "./_helpers.ts";

const LINES = ["--message", "Hello", "--message", "wörld 🌮"];
const FRAMED = "> Hello\n> wörld 🌮\n< 1: olleH\n< 2: 🌮 dlröw\n";

test("lesson 05: line framing", async (t) => {
  await using server = await LessonServer.start("lesson05-server");
  const port = String(server.port);

  for (const mode of [[], ["--split"], ["--burst"]]) {
    await t.step(
      `framed server, client ${mode[0] ?? "one write per line"}: same answers`,
      async () => {
        const client = await runTask("lesson05-client", ["--port", port, ...LINES, ...mode]);
        assertEquals([client.code, client.stdout, client.stderr], [0, FRAMED, ""]);
      },
    );
  }

  await t.step("lines from stdin; /bye gets bye and closes the connection", async () => {
    const client = await runTask("lesson05-client", ["--port", port], {
      stdin: "a\r\n/bye\nnot answered\n",
    });
    assertEquals([client.code, client.stdout, client.stderr], [
      0,
      "> a\n> /bye\n> not answered\n< 1: a\n< bye\n",
      "",
    ]);
  });

  await t.step(
    "a raw socket splitting the exchange at every byte gets the same answers",
    async () => {
      const request = encode("Hello\nwörld 🌮\n");
      const expected = "1: olleH\n2: 🌮 dlröw\n";
      for (let split = 1; split < request.length; split++) {
        const conn = await rawConnect(server.port);
        try {
          await writeAll(conn, request.subarray(0, split));
          await sleep(split === 1 ? 20 : 0);
          await writeAll(conn, request.subarray(split));
          await conn.closeWrite();
          assertEquals(decode(await readToEnd(conn)), expected, `split at byte ${split}`);
        } finally {
          closeRaw(conn);
        }
      }
    },
  );

  await t.step("the server serves many clients at once", async () => {
    const first = await rawConnect(server.port);
    try {
      await writeAll(first, encode("first\n")); // stays open
      const client = await runTask("lesson05-client", ["--port", port, "--message", "second"]);
      assertEquals(client.stdout, "> second\n< 1: dnoces\n");
      await first.closeWrite();
      assertEquals(decode(await readToEnd(first)), "1: tsrif\n");
    } finally {
      closeRaw(first);
    }
  });
});

test("lesson 05: --naive answers each read, so --split and --burst break it", async (t) => {
  await using server = await LessonServer.start("lesson05-server", ["--naive"]);
  const port = String(server.port);
  await t.step("--split: every piece becomes a message", async () => {
    const client = await runTask("lesson05-client", [
      "--port",
      port,
      "--message",
      "Hello",
      "--split",
    ]);
    assertEquals([client.code, client.stdout], [0, "> Hello\n< 1: eH\n< 2: ll\n< 3: o\n"]);
  });
  await t.step("--burst: two lines become one message", async () => {
    const client = await runTask("lesson05-client", ["--port", port, ...LINES, "--burst"]);
    assertEquals([client.code, client.stdout], [
      0,
      "> Hello\n> wörld 🌮\n< 1: 🌮 dlröw\n< olleH\n",
    ]);
  });
});

test("lesson 05: a line over --max-line gets an error line and the connection closes", async () => {
  await using server = await LessonServer.start("lesson05-server", ["--max-line", "8"]);
  const conn = await rawConnect(server.port);
  try {
    await writeAll(conn, encode("short\nthis line is far too long and never ends"));
    const reply = decode(await readToEnd(conn));
    assertEquals(reply, "1: trohs\nerror: line is longer than the limit of 8 bytes\n");
  } finally {
    closeRaw(conn);
  }
  assert(await server.waitForLine(/after 1 message: line is longer than the limit of 8 bytes$/));
  // The client prints the answers it got, then the server's error as one line, exit 1.
  const client = await runTask("lesson05-client", [
    "--port",
    String(server.port),
    "--message",
    "short",
    "--message",
    "this line is too long",
  ]);
  assertEquals([client.code, client.stdout, client.stderr], [
    1,
    "> short\n> this line is too long\n< 1: trohs\n",
    "the server said: line is longer than the limit of 8 bytes\n",
  ]);
});

test("lesson 05: --split with --burst is a usage error (exit 2), like every bad command line", async () => {
  const client = await runTask("lesson05-client", ["--message", "a", "--split", "--burst"]);
  assertEquals([client.code, client.stdout, client.stderr], [
    2,
    "",
    "choose --split or --burst, not both\n",
  ]);
});
