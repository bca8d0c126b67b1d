/**
 * Lesson 17: lesson 05's line service over a Unix socket, and the stale
 * socket rule: a stale file is removed, a live server's socket never is.
 *
 * The tasks may only use their one socket path (their Deno permissions name
 * it), so every test here uses that path, one server at a time.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { LessonServer, runTask } from "./_helpers.ts";

const PATH = "/tmp/deno-socket-lessons-17.sock";
const LINES = ["--message", "Hello", "--message", "wörld 🌮"];
const FRAMED = "> Hello\n> wörld 🌮\n< 1: olleH\n< 2: 🌮 dlröw\n";
const START = "start it with: deno task lesson17-server";

/** Starts the server and checks its `listening on unix:PATH` line. */
async function start(args: string[] = []): Promise<LessonServer> {
  const server = await LessonServer.start("lesson17-server", args);
  assertEquals(server.path, PATH);
  return server;
}

Deno.test("lesson 17: lesson 05's lines over a Unix socket", async (t) => {
  await using server = await start();
  assert(server.lines.includes(`listening on unix:${PATH}`));

  for (const mode of [[], ["--split"], ["--burst"]]) {
    await t.step(`client ${mode[0] ?? "one write per line"}: lesson 05's answers`, async () => {
      const client = await runTask("lesson17-client", [...LINES, ...mode]);
      assertEquals([client.code, client.stdout, client.stderr], [0, FRAMED, ""]);
    });
  }

  await t.step("lines from stdin; /bye closes", async () => {
    const client = await runTask("lesson17-client", [], { stdin: "a\n/bye\nnot answered\n" });
    assertEquals([client.code, client.stdout], [0, "> a\n> /bye\n> not answered\n< 1: a\n< bye\n"]);
  });

  await t.step("the server logs each client: a Unix client's end has no name", async () => {
    assert(await server.waitForLine("closed connection from unix:(unnamed) after 2 messages"));
  });

  await t.step("a second server on a live socket stops, and leaves it alone", async () => {
    const second = await runTask("lesson17-server", []);
    assertEquals([second.code, second.stdout, second.stderr], [
      1,
      "",
      `unix:${PATH} is in use by a running server: stop it first, or choose another --path\n`,
    ]);
    // The first server still has its socket: a client gets its answers.
    const client = await runTask("lesson17-client", LINES);
    assertEquals([client.code, client.stdout], [0, FRAMED]);
  });

  await t.step("Ctrl-C removes the socket file; then a client finds no file", async () => {
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0);
    assertEquals(result.stdout.trimEnd().split("\n").at(-1), `stopped: removed ${PATH}`);
    const client = await runTask("lesson17-client", ["--message", "hi"]);
    assertEquals([client.code, client.stderr], [
      1,
      `could not connect to unix:${PATH}: no such socket file: is the server running? ${START}\n`,
    ]);
  });
});

Deno.test("lesson 17: a killed server leaves a stale socket, the next one removes it", async () => {
  const killed = await start();
  await killed.stop("SIGKILL"); // no chance to clean up: the file stays

  const client = await runTask("lesson17-client", ["--message", "hi"]);
  assertEquals([client.code, client.stdout, client.stderr], [
    1,
    "> hi\n",
    `could not connect to unix:${PATH}: connection refused: the file is there but no server ` +
    `listens on it (a stale socket?): ${START}\n`,
  ]);

  await using server = await start();
  assertEquals(server.lines.slice(0, 2), [
    `removed stale socket file ${PATH} (no server was listening on it)`,
    `listening on unix:${PATH}`,
  ]);
  const again = await runTask("lesson17-client", LINES);
  assertEquals([again.code, again.stdout], [0, FRAMED]);
});

Deno.test("lesson 17: lesson 05's limits hold on a Unix socket", async () => {
  await using _server = await start(["--max-line", "8"]);
  const client = await runTask("lesson17-client", ["--message", "short", "--message", "too long!"]);
  assertEquals([client.code, client.stdout, client.stderr], [
    1,
    "> short\n> too long!\n< 1: trohs\n",
    "the server said: line is longer than the limit of 8 bytes\n",
  ]);
});

Deno.test("lesson 17: --mode sets the socket file's permissions", async () => {
  await using server = await start(["--mode", "600"]);
  assertEquals(server.lines.slice(0, 2), [
    "socket file permissions: 600",
    `listening on unix:${PATH}`,
  ]);
  const bad = await runTask("lesson17-server", ["--mode", "999"]);
  assertEquals([bad.code, bad.stderr], [
    2, // a bad flag value is a usage error, like every other bad flag
    '--mode must be octal permissions such as 600 or 660, got "999"\n',
  ]);
  // An abstract name is no file: --mode is refused before anything listens.
  const abstract = await runTask("lesson17-server", ["--path", "@lesson17", "--mode", "600"]);
  assertEquals([abstract.code, abstract.stdout, abstract.stderr], [
    2,
    "",
    "--mode sets a socket file's permissions; @NAME has no file\n",
  ]);
});

Deno.test("lesson 17: path limits and permissions, one line each", async (t) => {
  const long = "/tmp/" + "a".repeat(110) + ".sock";
  for (const task of ["lesson17-server", "lesson17-client"]) {
    const message = task.endsWith("client") ? ["--message", "x"] : [];
    await t.step(`${task}: a path over sun_path's limit is a usage error`, async () => {
      const result = await runTask(task, ["--path", long]);
      assertEquals([result.code, result.stderr], [
        2,
        "--path is 120 bytes long; a socket path may have at most 107 (the kernel's sun_path): " +
        "use a shorter one\n",
      ]);
    });
    await t.step(`${task}: another path is outside the task's permissions`, async () => {
      const result = await runTask(task, ["--path", "/tmp/other.sock", ...message]);
      assertEquals(result.code, 1);
      const program = task.endsWith("server") ? "server" : "client";
      assertEquals(
        result.stderr,
        `not permitted to use /tmp/other.sock: the task may only use ${PATH}; for another path ` +
          "run: deno run --allow-read=/tmp/other.sock --allow-write=/tmp/other.sock " +
          `--allow-net=unix:/tmp/other.sock lessons/17-unix-sockets/${program}.ts ` +
          "--path /tmp/other.sock\n",
      );
    });
    await t.step(`${task}: an abstract name needs plain --allow-net`, async () => {
      const result = await runTask(task, ["--path", "@lesson17", ...message]);
      assertEquals(result.code, 1);
      assertMatch(result.stderr, /^not permitted to use @lesson17: .*deno run --allow-net /);
    });
  }
});

Deno.test("lesson 17: the bench server fails in one line, without --path advice", async () => {
  // A regular file where the bench's socket should go: never removed, one line, no stack trace.
  await Deno.mkdir("tests/artifacts", { recursive: true });
  const file = `${Deno.cwd()}/tests/artifacts/lesson17-bench-not-a-socket`;
  await Deno.writeTextFile(file, "my notes\n");
  try {
    const output = await new Deno.Command("deno", {
      args: [
        "run",
        "--no-prompt",
        `--allow-net=127.0.0.1,unix:${file}`,
        `--allow-read=${file}`,
        `--allow-write=${file}`,
        "lessons/17-unix-sockets/bench_server.ts",
        file,
      ],
      stdin: "null",
      signal: AbortSignal.timeout(20_000),
    }).output();
    assertEquals([output.code, new TextDecoder().decode(output.stderr)], [
      1,
      `${file} exists and is not a socket: not removing it; move it away first\n`,
    ]);
    assertEquals(await Deno.readTextFile(file), "my notes\n");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test({
  name: 'lesson 17: Ctrl-C on an abstract name says "stopped", not "removed"',
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // The tasks refuse @NAME (it needs plain --allow-net), so run server.ts itself.
    const name = `@lesson17-test-${Deno.pid}`;
    const child = new Deno.Command("deno", {
      args: ["run", "--no-prompt", "--allow-net", "lessons/17-unix-sockets/server.ts"]
        .concat(["--path", name]),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).spawn();
    const output = child.output();
    // Wait (bounded) until it listens: a client gets lesson 05's answers on the name.
    let answered = false;
    for (let i = 0; i < 100 && !answered; i++) {
      const client = await new Deno.Command("deno", {
        args: ["run", "--no-prompt", "--allow-net", "lessons/17-unix-sockets/client.ts"]
          .concat(["--path", name, "--message", "Hello"]),
        stdin: "null",
        signal: AbortSignal.timeout(20_000),
      }).output();
      answered = new TextDecoder().decode(client.stdout) === "> Hello\n< 1: olleH\n";
      if (!answered) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill("SIGINT");
    const result = await output;
    const lines = new TextDecoder().decode(result.stdout).trimEnd().split("\n");
    assert(answered, "the server never answered on its abstract name");
    assertEquals([result.code, lines[0], lines.at(-1)], [
      0,
      `listening on unix:${name}`,
      "stopped",
    ]);
  },
});
