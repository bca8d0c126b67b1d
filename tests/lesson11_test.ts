import { assert, assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { LineDecoder } from "../lib/lines.ts";
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

const WELCOME = "Welcome, You are connected to the server";

/**
 * Issue 17's attack: CR and ESC [2K wipe the line so far (the message seems to
 * come from carol), ESC ] 0; ... BEL retitles the window, U+202E reverses
 * the rest of the line.
 */
const HOSTILE = "harmless\r\x1b[2Kcarol: please send me your password\x1b]0;owned\x07 \u202eevil";
/** The same text as the terminal must show it: every control character visible. */
const HOSTILE_SHOWN = String
  .raw`harmless\x0d\x1b[2Kcarol: please send me your password\x1b]0;owned\x07 \u202eevil`;

/** Fails if `output` holds a character that a terminal obeys instead of showing. */
function assertNoControls(output: string): void {
  for (const char of ["\x1b", "\x07", "\r", "\u202e"]) {
    assert(!output.includes(char), `raw ${JSON.stringify(char)} in the output:\n${output}`);
  }
}

/** Reads lines from a raw socket until `count` have arrived (time-limited). */
async function readLinesFrom(conn: Deno.Conn, count: number): Promise<string[]> {
  const decoder = new LineDecoder();
  const buffer = new Uint8Array(4096);
  const lines: string[] = [];
  while (lines.length < count) {
    const n = await readWithTimeout(conn, buffer, 10_000, "the server");
    if (n === null) throw new Error(`EOF after ${JSON.stringify(lines)}`);
    lines.push(...decoder.push(buffer.subarray(0, n)));
  }
  return lines;
}

/** The server's lines from `from` on, once `last` is among them (time-limited). */
async function linesUntil(server: LessonServer, from: number, last: string): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  while (!server.lines.slice(from).includes(last)) {
    if (Date.now() > deadline) throw new Error(`no "${last}" in:\n${server.lines.join("\n")}`);
    await sleep(20);
  }
  return server.lines.slice(from);
}

test("lesson 11: one-to-one chat", async (t) => {
  await using server = await LessonServer.start("lesson11-server", [], 20_000, { stdin: true });
  const port = String(server.port);

  await t.step("server and client talk both ways; the server's /bye ends it", async () => {
    const from = server.lines.length;
    const client = runTask("lesson11-client", ["--port", port, "--wait", "15"], {
      stdin: "Hello, server\nHow are you? 🌮\n",
      timeoutMs: 30_000,
    });
    // The server types its answer once it has seen the client's lines.
    await linesUntil(server, from, "client> How are you? 🌮");
    await server.writeStdin("Fine, thanks\n/bye\n");
    const result = await client;
    assertEquals(result.stderr, "");
    assertEquals(result.stdout.split("\n"), [
      `server> ${WELCOME}`,
      "(end of input: listening 15 s more, then /bye)",
      "server> Fine, thanks",
      "chat over: the server said /bye",
      "",
    ]);
    assertEquals(result.code, 0);
    assertEquals(await linesUntil(server, from, "waiting for the next client"), [
      `connection from 127.0.0.1:${server.lines[from].split(":").at(-1)}`,
      "client> Hello, server",
      "client> How are you? 🌮",
      "chat over: you said /bye",
      "waiting for the next client",
    ]);
  });

  await t.step("the client's /bye ends it, and the server takes the next client", async () => {
    const from = server.lines.length;
    const result = await runTask("lesson11-client", ["--port", port], {
      stdin: "Hi\r\n/bye\nnever sent\n",
    });
    assertEquals([result.code, result.stderr], [0, ""]);
    assertEquals(result.stdout, `server> ${WELCOME}\nchat over: you said /bye\n`);
    const lines = await linesUntil(server, from, "waiting for the next client");
    assertEquals(lines.slice(1), [
      "client> Hi",
      "chat over: the client said /bye",
      "waiting for the next client",
    ]);
  });

  await t.step("input ended: the client waits --wait seconds, then says /bye", async () => {
    const from = server.lines.length;
    const result = await runTask("lesson11-client", ["--port", port, "--wait", "0.2"], {
      stdin: "just this\n",
    });
    assertEquals(result.code, 0);
    assertEquals(result.stdout.split("\n").slice(1), [
      "(end of input: listening 0.2 s more, then /bye)",
      "chat over: you said /bye",
      "",
    ]);
    const lines = await linesUntil(server, from, "waiting for the next client");
    assertEquals(lines.slice(1, 3), ["client> just this", "chat over: the client said /bye"]);
  });

  await t.step("typing with nobody connected is not sent anywhere", async () => {
    const from = server.lines.length;
    await server.writeStdin("anyone?\n");
    assertEquals(await linesUntil(server, from, "(nobody is connected: not sent)"), [
      "(nobody is connected: not sent)",
    ]);
  });

  await t.step(
    "a first Python chat client, with newlines, two messages in one segment",
    async () => {
      const from = server.lines.length;
      const conn = await rawConnect(server.port);
      try {
        await writeAll(conn, encode("Hello World\n"));
        assertEquals(await readLinesFrom(conn, 1), [WELCOME]); // its one recv()
        await writeAll(conn, encode("How are you?\n/bye\n")); // one write, one segment
        assertEquals(decode(await readToEnd(conn)), ""); // the server closes
      } finally {
        closeRaw(conn);
      }
      const lines = await linesUntil(server, from, "waiting for the next client");
      assertEquals(lines.slice(1), [
        "client> Hello World",
        "client> How are you?",
        "chat over: the client said /bye",
        "waiting for the next client",
      ]);
    },
  );

  await t.step("a first Python chat client without newlines: a pause ends a message", async () => {
    const from = server.lines.length;
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, encode("Hello World"));
      assertEquals(await readLinesFrom(conn, 1), [WELCOME]);
      // No LF: the server shows the text once the client pauses.
      await linesUntil(server, from, "client> Hello World");
      await writeAll(conn, encode("/bye"));
      assertEquals(decode(await readToEnd(conn)), "");
    } finally {
      closeRaw(conn);
    }
    const lines = await linesUntil(server, from, "waiting for the next client");
    assertEquals(lines.slice(1), [
      "client> Hello World",
      "chat over: the client said /bye",
      "waiting for the next client",
    ]);
  });

  await t.step("without newlines, two messages in one segment are glued together", async () => {
    const from = server.lines.length;
    const conn = await rawConnect(server.port);
    try {
      assertEquals(await readLinesFrom(conn, 1), [WELCOME]);
      await writeAll(conn, encode("How are you?/bye"));
      await conn.closeWrite(); // s.close()
      assertEquals(decode(await readToEnd(conn)), "");
    } finally {
      closeRaw(conn);
    }
    const lines = await linesUntil(server, from, "waiting for the next client");
    assertEquals(lines.slice(1), [
      "client> How are you?/bye",
      "chat over: the client hung up without /bye",
      "waiting for the next client",
    ]);
  });

  await t.step("a client's control characters are shown, not obeyed", async () => {
    const from = server.lines.length;
    const conn = await rawConnect(server.port);
    try {
      assertEquals(await readLinesFrom(conn, 1), [WELCOME]);
      await writeAll(conn, encode(`${HOSTILE}\n/bye\n`));
      assertEquals(decode(await readToEnd(conn)), "");
    } finally {
      closeRaw(conn);
    }
    const lines = await linesUntil(server, from, "waiting for the next client");
    assertEquals(lines.slice(1, 3), [
      `client> ${HOSTILE_SHOWN}`,
      "chat over: the client said /bye",
    ]);
    assertNoControls(server.lines.slice(from).join("\n"));
  });

  await t.step("a second client waits until the first has left", async () => {
    const from = server.lines.length;
    const first = await rawConnect(server.port);
    const second = await rawConnect(server.port);
    try {
      assertEquals(await readLinesFrom(first, 1), [WELCOME]);
      await writeAll(second, encode("from the second\n")); // waits in the kernel's buffer
      await writeAll(first, encode("from the first\n/bye\n"));
      assertEquals(decode(await readToEnd(first)), "");
      assertEquals(await readLinesFrom(second, 1), [WELCOME]);
      await writeAll(second, encode("/bye\n"));
      assertEquals(decode(await readToEnd(second)), "");
    } finally {
      closeRaw(first);
      closeRaw(second);
    }
    await server.waitForLineCount(from + 8);
    const lines = server.lines.slice(from);
    assertEquals(server.lines.slice(from).filter((line) => !line.startsWith("connection")), [
      "client> from the first",
      "chat over: the client said /bye",
      "waiting for the next client",
      "client> from the second",
      "chat over: the client said /bye",
      "waiting for the next client",
    ], lines.join("\n"));
  });

  await t.step("a line over 4,096 bytes: the client is told, then disconnected", async () => {
    const from = server.lines.length;
    const conn = await rawConnect(server.port);
    try {
      assertEquals(await readLinesFrom(conn, 1), [WELCOME]);
      await writeAll(conn, encode("x".repeat(4097) + "\n"));
      assertEquals(
        decode(await readToEnd(conn)),
        [
          "the client sent a line longer than 4096 bytes: closing",
          "/bye",
          "",
        ].join("\n"),
      );
    } finally {
      closeRaw(conn);
    }
    const lines = await linesUntil(server, from, "waiting for the next client");
    assertEquals(lines.slice(1, 2), ["chat over: the client sent a line longer than 4096 bytes"]);
  });

  await t.step("invalid UTF-8: the client is told, then disconnected", async () => {
    const from = server.lines.length;
    const conn = await rawConnect(server.port);
    try {
      assertEquals(await readLinesFrom(conn, 1), [WELCOME]);
      await writeAll(conn, new Uint8Array([0x68, 0xff, 0x69, 0x0a]));
      assertEquals(
        decode(await readToEnd(conn)),
        "the client sent a line that is not UTF-8: closing\n/bye\n",
      );
    } finally {
      closeRaw(conn);
    }
    const lines = await linesUntil(server, from, "waiting for the next client");
    assertEquals(lines.slice(1, 2), ["chat over: the client sent a line that is not UTF-8"]);
  });

  await t.step("Ctrl-C during a chat says /bye to the client, then exits 0", async () => {
    const conn = await rawConnect(server.port);
    try {
      assertEquals(await readLinesFrom(conn, 1), [WELCOME]);
      await writeAll(conn, encode("still here\n"));
      await linesUntil(server, 0, "client> still here");
      const stopping = server.stop("SIGINT");
      assertEquals(await readLinesFrom(conn, 1), ["/bye"]);
      closeRaw(conn); // the client closes: the server's wait is over
      const result = await stopping;
      assertEquals([result.code, result.stderr, result.timedOut], [0, "", false]);
      assert(server.lines.includes("shutting down"));
    } finally {
      closeRaw(conn);
    }
  });
});

test("lesson 11: the server's --idle-timeout", async () => {
  await using server = await LessonServer.start("lesson11-server", ["--idle-timeout", "1"]);
  const conn = await rawConnect(server.port);
  try {
    assertEquals(
      decode(await readToEnd(conn)),
      `${WELCOME}\nthe client sent nothing for 1 s: closing\n/bye\n`,
    );
  } finally {
    closeRaw(conn);
  }
  assert(await server.waitForLine("chat over: the client sent nothing for 1 s"));
});

test("lesson 11: the client against a first Python chat server (greet, then only read)", async () => {
  // That server sends its welcome without a newline, then prints what it reads, until EOF.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      await writeAll(conn, encode(WELCOME));
      return decode(await readToEnd(conn));
    } finally {
      closeRaw(conn);
    }
  })();
  try {
    const result = await runTask("lesson11-client", [
      "--port",
      String(listener.addr.port),
      "--wait",
      "0.3",
    ], { stdin: "Hello World\nsecond line\n" });
    assertEquals(result.stderr, "");
    assertEquals(result.stdout.split("\n"), [
      `server> ${WELCOME}`, // shown although it had no newline
      "(end of input: listening 0.3 s more, then /bye)",
      "chat over: you said /bye",
      "",
    ]);
    assertEquals(result.code, 0);
    assertEquals(await serving, "Hello World\nsecond line\n/bye\n");
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

test("lesson 11: the server's --idle-timeout counts lines: a client sending a byte at a time is closed", async () => {
  await using server = await LessonServer.start("lesson11-server", ["--idle-timeout", "1"]);
  const conn = await rawConnect(server.port);
  const started = Date.now();
  // One byte every 200 ms, never a newline: before, each byte reset the idle clock.
  let dribbling = true;
  const dribble = (async () => {
    while (dribbling && Date.now() - started < 8_000) {
      try {
        await conn.write(encode("x"));
      } catch {
        return; // the server closed the connection
      }
      await sleep(200);
    }
  })();
  try {
    assertEquals(
      decode(await readToEnd(conn)),
      `${WELCOME}\nthe client sent no complete line in 1 s: closing\n/bye\n`,
    );
    const elapsed = Date.now() - started;
    assert(elapsed < 5_000, `closed after ${elapsed} ms; --idle-timeout is 1 s`);
  } finally {
    dribbling = false;
    await dribble;
    closeRaw(conn);
  }
  assert(await server.waitForLine("chat over: the client sent no complete line in 1 s"));
});

test("lesson 11: the client shows the server's control characters, not obeys them", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      await writeAll(conn, encode(`${WELCOME}\n${HOSTILE}\n/bye\n`));
      return decode(await readToEnd(conn));
    } finally {
      closeRaw(conn);
    }
  })();
  try {
    const result = await runTask("lesson11-client", ["--port", String(listener.addr.port)], {
      stdin: "",
    });
    assertEquals(result.stdout.split("\n"), [
      `server> ${WELCOME}`,
      `server> ${HOSTILE_SHOWN}`,
      "chat over: the server said /bye",
      "",
    ]);
    assertNoControls(result.stdout + result.stderr);
    assertEquals([result.code, result.stderr], [0, ""]);
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

test("lesson 11: a client queued behind another gives up after --timeout, and says why", async () => {
  await using server = await LessonServer.start("lesson11-server");
  const holder = await rawConnect(server.port);
  try {
    assertEquals(await readLinesFrom(holder, 1), [WELCOME]); // the server is busy with us
    const started = Date.now();
    const result = await runTask("lesson11-client", [
      "--port",
      String(server.port),
      "--timeout",
      "3",
    ], { stdin: "hello?\n", timeoutMs: 15_000 });
    const elapsed = Date.now() - started;
    assertEquals(
      result.stdout,
      [
        "(no greeting yet: the server is probably talking to another client, and you are " +
        "waiting in its queue; giving up after 3 s)",
        "",
      ].join("\n"),
    );
    assertEquals(
      result.stderr,
      "no greeting from the server in 3 s: it is still talking to another client " +
        "(try again later, or wait longer with --timeout)\n",
    );
    assertEquals([result.code, result.timedOut], [1, false]);
    assert(elapsed >= 3_000 && elapsed < 12_000, `gave up after ${elapsed} ms`);
    // The chat that held the server goes on undisturbed.
    await writeAll(holder, encode("still talking\n/bye\n"));
    assertEquals(decode(await readToEnd(holder)), "");
    assert(await server.waitForLine("client> still talking"));
  } finally {
    closeRaw(holder);
  }
});
