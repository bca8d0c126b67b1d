/**
 * Lesson 12's terminal client (which lessons 13 and 20 run too) against
 * hostile or silent servers: a peer's control characters are shown, never
 * obeyed, and lines that got no answer are named, with exit code 1.
 */
import { assert, assertEquals } from "@std/assert";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { LineDecoder } from "../lib/lines.ts";
import { taskArgs } from "../tools/lesson_process.ts";
import { closeRaw, encode, LessonServer, rawConnect, runTask } from "./_helpers.ts";

/**
 * Issue 17's attack: CR and ESC [2K wipe the line so far (the message seems to
 * come from carol), ESC ] 0; ... BEL retitles the window, U+202E reverses
 * the rest of the line.
 */
const HOSTILE = "harmless\r\x1b[2Kcarol: please send me your password\x1b]0;owned\x07 \u202eevil";
/** The same text as the terminal must show it. */
const HOSTILE_SHOWN = String
  .raw`harmless\x0d\x1b[2Kcarol: please send me your password\x1b]0;owned\x07 \u202eevil`;

/** Fails if `output` holds a character that a terminal obeys instead of showing. */
function assertNoControls(output: string): void {
  for (const char of ["\x1b", "\x07", "\r", "\u202e"]) {
    assert(!output.includes(char), `raw ${JSON.stringify(char)} in the output:\n${output}`);
  }
}

/**
 * A fake chat server on loopback for one client: `answer` gets each line the
 * client sends and returns what to send back (or nothing). It closes after
 * answering `/bye` with `bye`, or when the client hangs up.
 */
function fakeServer(answer: (line: string) => string | undefined) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: string[] = [];
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      const decoder = new LineDecoder();
      const buffer = new Uint8Array(16 * 1024);
      while (true) {
        const n = await readWithTimeout(conn, buffer, 15_000, "the client");
        if (n === null) return;
        for (const line of decoder.push(buffer.subarray(0, n))) {
          received.push(line);
          const reply = answer(line);
          if (reply !== undefined) await writeAll(conn, encode(reply));
          if (line === "/bye") return;
        }
      }
    } catch {
      // the client closed the connection: the test checks what it printed
    } finally {
      closeRaw(conn);
    }
  })();
  return {
    port: listener.addr.port,
    received,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
    },
  };
}

/** The lesson 12 client with a standard input the test types into, later. */
function startClient(args: string[]) {
  const child = new Deno.Command("deno", {
    args: [...taskArgs("lesson12-client"), ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stdin = child.stdin.getWriter();
  let stdout = "";
  const reading = (async () => {
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) stdout += text;
  })();
  const stderr = new Response(child.stderr).text();
  return {
    get stdout() {
      return stdout;
    },
    type: (text: string) => stdin.write(encode(text)),
    /** Waits (at most 10 s) until stdout includes `text`. */
    async waitFor(text: string): Promise<void> {
      const deadline = Date.now() + 10_000;
      while (!stdout.includes(text)) {
        if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(text)} in:\n${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    /** Ends standard input and waits (at most 10 s) for the client to exit. */
    async finish() {
      await stdin.close().catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const status = await child.status;
      clearTimeout(timer);
      await reading;
      return { code: status.code, stdout, stderr: await stderr };
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.status;
      await stdin.close().catch(() => {});
      await reading.catch(() => {});
      await stderr.catch(() => {});
    },
  };
}

Deno.test("lesson 12 client: a message with control characters is shown, not obeyed", async () => {
  await using server = await LessonServer.start("lesson12-server");
  const mallory = await rawConnect(server.port);
  const decoder = new LineDecoder();
  const buffer = new Uint8Array(16 * 1024);
  const lines: string[] = [];
  const next = async () => {
    while (lines.length === 0) {
      const n = await readWithTimeout(mallory, buffer, 10_000, "the server");
      if (n === null) throw new Error("EOF");
      lines.push(...decoder.push(buffer.subarray(0, n)));
    }
    return lines.shift();
  };
  try {
    await writeAll(mallory, encode("/name mallory\n"));
    assertEquals(await next(), "ok name mallory");
    await using victim = startClient(["--port", String(server.port), "--name", "victim"]);
    assertEquals(await next(), "joined victim");
    await writeAll(mallory, encode(`/to victim ${HOSTILE}\n`));
    assertEquals(await next(), "ok sent victim");
    await victim.waitFor("mallory: ");
    const result = await victim.finish();
    assertEquals(result.stdout.split("\n"), [
      "* you are victim: /help lists the commands",
      `mallory: ${HOSTILE_SHOWN}`,
      "* bye",
      "",
    ]);
    assertNoControls(result.stdout + result.stderr);
    assertEquals([result.code, result.stderr], [0, ""]);
  } finally {
    closeRaw(mallory);
  }
});

Deno.test("lesson 12 client: a hostile server's control characters are shown in every line", async () => {
  await using server = fakeServer((line) => {
    if (line === "/name alice") {
      return `ok name alice\nfrom b\x1b[8mob ${HOSTILE}\njoined \u202eevil\nleft \x9b2Kx\n`;
    }
    if (line === "/users") return "users 1 \x1b]0;t\x07x\n";
    if (line === "/to bob hi") return "error no-such-user \rbob is \x1b[1mnot\x1b[0m here\n";
    if (line === "/bye") return "bye\n";
  });
  const result = await runTask("lesson12-client", [
    "--port",
    String(server.port),
    "--name",
    "alice",
  ], { stdin: "/users\n/to bob hi\n" });
  assertEquals(result.stdout.split("\n"), [
    "* you are alice: /help lists the commands",
    String.raw`b\x1b[8mob: ${HOSTILE_SHOWN}`,
    String.raw`* \u202eevil joined`,
    String.raw`* \x9b2Kx left`,
    String.raw`* here (1): \x1b]0;t\x07x`,
    String.raw`* error: \x0dbob is \x1b[1mnot\x1b[0m here`,
    "* bye",
    "",
  ]);
  assertNoControls(result.stdout + result.stderr);
  assert(!result.stdout.includes("\x9b"), "a raw C1 control");
  assertEquals([result.code, result.stderr], [0, ""]);
});

Deno.test("lesson 12 client: lines the server never answered are named, exit 1", async () => {
  // It answers /name and /bye, nothing else (before, the client said bye and exited 0).
  await using server = fakeServer((line) =>
    line === "/name alice" ? "ok name alice\n" : line === "/bye" ? "bye\n" : undefined
  );
  const started = Date.now();
  const result = await runTask("lesson12-client", [
    "--port",
    String(server.port),
    "--name",
    "alice",
    "--timeout",
    "1",
  ], { stdin: `/users\n/to bob hi\n/to bob \x1b[2K${"x".repeat(60)}\n`, timeoutMs: 15_000 });
  const elapsed = Date.now() - started;
  assertEquals(result.stdout, "* you are alice: /help lists the commands\n");
  assertEquals(
    result.stderr,
    String.raw`* no answer to: /users, /to bob hi, /to bob \x1b[2K${"x".repeat(25)}… (waited 1 s)` +
      "\n",
  );
  assertEquals(result.code, 1);
  assert(elapsed < 10_000, `took ${elapsed} ms with --timeout 1`);
  assertEquals(server.received.slice(0, 3), ["/name alice", "/users", "/to bob hi"]);
});

Deno.test("lesson 12 client: a server that says bye before answering: named, exit 1", async () => {
  await using server = fakeServer((line) =>
    line === "/name alice" ? "ok name alice\n" : line === "/to bob hi" ? "bye\n" : undefined
  );
  const result = await runTask("lesson12-client", [
    "--port",
    String(server.port),
    "--name",
    "alice",
  ], { stdin: "/users\n/to bob hi\n" });
  assertEquals(result.stdout, "* you are alice: /help lists the commands\n* bye\n");
  assertEquals(result.stderr, "* the server said bye; no answer to: /users, /to bob hi\n");
  assertEquals(result.code, 1);
});
