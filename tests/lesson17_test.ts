/**
 * Lesson 17: lesson 05's line service over a Unix socket, the stale socket
 * rule (a stale file is removed, a live server's socket never is), and the
 * private directory of the default path.
 *
 * The tasks may only use their default path (their Deno permissions name
 * it), which is in `$XDG_RUNTIME_DIR`. So each test gives the programs an
 * `XDG_RUNTIME_DIR` of its own, a fresh temporary directory: the tests never
 * meet a learner's running server, nor each other.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { test } from "./_checks.ts";
import type { Steps } from "./_checks.ts";
import { LessonServer, runTask } from "./_helpers.ts";

/** A temporary XDG_RUNTIME_DIR, its socket path, and the env that points the programs at it. */
class Runtime implements AsyncDisposable {
  constructor(readonly dir: string) {}
  static async make(): Promise<Runtime> {
    await Deno.mkdir("tests/artifacts", { recursive: true });
    return new Runtime(
      await Deno.makeTempDir({ dir: `${Deno.cwd()}/tests/artifacts`, prefix: "l17-" }),
    );
  }
  get private(): string {
    return `${this.dir}/deno-socket-lessons`;
  }
  get path(): string {
    return `${this.private}/lesson17.sock`;
  }
  get env(): Record<string, string> {
    return { XDG_RUNTIME_DIR: this.dir };
  }
  async [Symbol.asyncDispose]() {
    await Deno.remove(this.dir, { recursive: true });
  }
}

let runtime: Runtime;
let PATH = "";

/** Runs `fn` with a fresh runtime directory (and PATH its socket path). */
function withRuntime(fn: (t: Steps) => Promise<void>) {
  return async (t: Steps) => {
    await using fresh = await Runtime.make();
    runtime = fresh;
    PATH = fresh.path;
    await fn(t);
  };
}

/** The lesson 17 task `task` with this test's runtime directory. */
function run(task: string, args: string[], options: { stdin?: string } = {}) {
  return runTask(task, args, { ...options, env: runtime.env });
}

const LINES = ["--message", "Hello", "--message", "wörld 🌮"];
const FRAMED = "> Hello\n> wörld 🌮\n< 1: olleH\n< 2: 🌮 dlröw\n";
const START = "start it with: deno task lesson17-server";

/** Starts the server and checks its `listening on unix:PATH` line. */
async function start(args: string[] = []): Promise<LessonServer> {
  const server = await LessonServer.start("lesson17-server", args, 20_000, { env: runtime.env });
  assertEquals(server.path, PATH);
  return server;
}

test(
  "lesson 17: lesson 05's lines over a Unix socket",
  withRuntime(async (t) => {
    await using server = await start();
    assert(server.lines.includes(`listening on unix:${PATH}`));

    for (const mode of [[], ["--split"], ["--burst"]]) {
      await t.step(`client ${mode[0] ?? "one write per line"}: lesson 05's answers`, async () => {
        const client = await run("lesson17-client", [...LINES, ...mode]);
        assertEquals([client.code, client.stdout, client.stderr], [0, FRAMED, ""]);
      });
    }

    await t.step("lines from stdin; /bye closes", async () => {
      const client = await run("lesson17-client", [], { stdin: "a\n/bye\nnot answered\n" });
      assertEquals([client.code, client.stdout], [
        0,
        "> a\n> /bye\n> not answered\n< 1: a\n< bye\n",
      ]);
    });

    await t.step("the server logs each client: a Unix client's end has no name", async () => {
      assert(await server.waitForLine("closed connection from unix:(unnamed) after 2 messages"));
    });

    await t.step("a second server on a live socket stops, and leaves it alone", async () => {
      const second = await run("lesson17-server", []);
      assertEquals([second.code, second.stdout, second.stderr], [
        1,
        "",
        `unix:${PATH} is in use by a running server: stop it first, or choose another --path\n`,
      ]);
      // The first server still has its socket: a client gets its answers.
      const client = await run("lesson17-client", LINES);
      assertEquals([client.code, client.stdout], [0, FRAMED]);
    });

    await t.step("Ctrl-C removes the socket file; then a client finds no file", async () => {
      const result = await server.stop("SIGINT");
      assertEquals(result.code, 0);
      assertEquals(result.stdout.trimEnd().split("\n").at(-1), `stopped: removed ${PATH}`);
      const client = await run("lesson17-client", ["--message", "hi"]);
      assertEquals([client.code, client.stderr], [
        1,
        `could not connect to unix:${PATH}: no such socket file: is the server running? ${START}\n`,
      ]);
    });
  }),
);

test(
  "lesson 17: a killed server leaves a stale socket, the next one removes it",
  withRuntime(async (_t) => {
    const killed = await start();
    await killed.stop("SIGKILL"); // no chance to clean up: the file stays

    const client = await run("lesson17-client", ["--message", "hi"]);
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
    const again = await run("lesson17-client", LINES);
    assertEquals([again.code, again.stdout], [0, FRAMED]);
  }),
);

test(
  "lesson 17: a regular file at the socket path is never removed",
  withRuntime(async (_t) => {
    // Someone's notes where the socket should go: "address in use", nobody answers, and
    // lstat says it is no socket. One line, exit 1, and the file is untouched.
    await Deno.mkdir(runtime.private, { mode: 0o700 });
    await Deno.writeTextFile(PATH, "my notes\n");
    const server = await run("lesson17-server", []);
    assertEquals([server.code, server.stdout, server.stderr], [
      1,
      "",
      `${PATH} exists and is not a socket: not removing it; choose another --path\n`,
    ]);
    assertEquals(await Deno.readTextFile(PATH), "my notes\n");
  }),
);

test(
  "lesson 17: lesson 05's limits hold on a Unix socket",
  withRuntime(async (_t) => {
    await using _server = await start(["--max-line", "8"]);
    const client = await run("lesson17-client", ["--message", "short", "--message", "too long!"]);
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      "> short\n> too long!\n< 1: trohs\n",
      "the server said: line is longer than the limit of 8 bytes\n",
    ]);
  }),
);

test(
  "lesson 17: --mode sets the socket file's permissions",
  withRuntime(async (_t) => {
    await using server = await start(["--mode", "600"]);
    assertEquals(server.lines.slice(0, 2), [
      "socket file permissions: 600",
      `listening on unix:${PATH}`,
    ]);
    const bad = await run("lesson17-server", ["--mode", "999"]);
    assertEquals([bad.code, bad.stderr], [
      2, // a bad flag value is a usage error, like every other bad flag
      '--mode must be octal permissions such as 600 or 660, got "999"\n',
    ]);
    // An abstract name is no file: --mode is refused before anything listens.
    const abstract = await run("lesson17-server", ["--path", "@lesson17", "--mode", "600"]);
    assertEquals([abstract.code, abstract.stdout, abstract.stderr], [
      2,
      "",
      "--mode sets a socket file's permissions; @NAME has no file\n",
    ]);
  }),
);

test(
  "lesson 17: path limits and permissions, one line each",
  withRuntime(async (t) => {
    const long = "/tmp/" + "a".repeat(110) + ".sock";
    for (const task of ["lesson17-server", "lesson17-client"]) {
      const message = task.endsWith("client") ? ["--message", "x"] : [];
      await t.step(`${task}: a path over sun_path's limit is a usage error`, async () => {
        const result = await run(task, ["--path", long]);
        assertEquals([result.code, result.stderr], [
          2,
          "--path is 120 bytes long; a socket path may have at most 107 (the kernel's sun_path): " +
          "use a shorter one\n",
        ]);
      });
      await t.step(`${task}: another path is outside the task's permissions`, async () => {
        const result = await run(task, ["--path", "/tmp/other.sock", ...message]);
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
        const result = await run(task, ["--path", "@lesson17", ...message]);
        assertEquals(result.code, 1);
        assertMatch(result.stderr, /^not permitted to use @lesson17: .*deno run --allow-net /);
      });
    }
  }),
);

Deno.test(
  "lesson 17: the bench server fails in one line, without --path advice",
  withRuntime(async (_t) => {
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
  }),
);

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

test(
  "lesson 17: the default path is in a private directory, made mode 700",
  withRuntime(async (t) => {
    await t.step("$XDG_RUNTIME_DIR/deno-socket-lessons, made by the server", async () => {
      await using _server = await start();
      const info = await Deno.lstat(runtime.private);
      assertEquals([info.isDirectory, (info.mode ?? 0) & 0o777], [true, 0o700]);
      const client = await run("lesson17-client", LINES);
      assertEquals([client.code, client.stdout], [0, FRAMED]);
    });
    await t.step("without XDG_RUNTIME_DIR: $HOME/.deno-socket-lessons", async () => {
      const env = { XDG_RUNTIME_DIR: "", HOME: runtime.dir };
      const path = `${runtime.dir}/.deno-socket-lessons/lesson17.sock`;
      await using server = await LessonServer.start("lesson17-server", [], 20_000, { env });
      assertEquals(server.path, path);
      const info = await Deno.lstat(`${runtime.dir}/.deno-socket-lessons`);
      assertEquals((info.mode ?? 0) & 0o777, 0o700);
      const client = await runTask("lesson17-client", LINES, { env });
      assertEquals([client.code, client.stdout], [0, FRAMED]);
      const help = await runTask("lesson17-client", ["--help"], { env });
      assert(help.stdout.includes(`(default "${path}")`), help.stdout);
    });
  }),
);

test(
  "lesson 17: a squatter in a directory others may write to hears nothing",
  withRuntime(async () => {
    // As in /tmp: the directory is open to everyone, and someone else listens on our path.
    await Deno.mkdir(runtime.private, { mode: 0o700 });
    await Deno.chmod(runtime.private, 0o777);
    const squatter = new Deno.Command("deno", {
      args: [
        "run",
        "--no-prompt",
        `--allow-read=${PATH}`,
        `--allow-write=${PATH}`,
        `--allow-net=unix:${PATH}`,
        "lessons/17-unix-sockets/server.ts",
        "--path",
        PATH,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).spawn();
    const output = squatter.output();
    try {
      // Wait (bounded) for the squatter's socket file.
      for (let i = 0; i < 200 && !(await Deno.lstat(PATH).catch(() => null))?.isSocket; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const refusal = `refusing to use ${runtime.private}: other users may use it (mode 777, ` +
        "not 700), so another user could squat or swap the socket file: " +
        `chmod 700 ${runtime.private}, or choose another --path\n`;
      const client = await run("lesson17-client", ["--message", "my secret token"]);
      assertEquals([client.code, client.stdout, client.stderr], [1, "", refusal]);
      const server = await run("lesson17-server", []);
      assertEquals([server.code, server.stdout, server.stderr], [1, "", refusal]);
    } finally {
      squatter.kill("SIGINT");
    }
    const squatted = new TextDecoder().decode((await output).stdout);
    assertEquals(squatted.split("\n")[0], `listening on unix:${PATH}`);
    assert(!squatted.includes("connection from"), `the squatter was reached:\n${squatted}`);
  }),
);

test(
  "lesson 17: a symbolic link for the private directory is refused",
  withRuntime(async () => {
    await Deno.mkdir(`${runtime.dir}/elsewhere`, { mode: 0o700 });
    // (Deno.symlink needs unscoped permissions, which the tests do not have: `deno eval` has all.)
    const link = await new Deno.Command("deno", {
      args: [
        "eval",
        `Deno.symlinkSync(${JSON.stringify(`${runtime.dir}/elsewhere`)}, ${
          JSON.stringify(runtime.private)
        })`,
      ],
      stdin: "null",
    }).output();
    assertEquals(link.code, 0);
    const server = await run("lesson17-server", []);
    assertEquals([server.code, server.stderr], [
      1,
      `refusing to use ${runtime.private}: it is a symbolic link (it could lead anywhere), so ` +
      "another user could squat or swap the socket file: remove it, or choose another --path\n",
    ]);
  }),
);

Deno.test("lesson 17: what makes a directory private (lstat's answer)", async () => {
  const { notPrivate } = await import("../lessons/17-unix-sockets/socket_path.ts");
  const dir = { isDirectory: true, isFile: false, isSymlink: false, uid: 1000, mode: 0o40700 };
  const info = (more: Partial<Deno.FileInfo>) => ({ ...dir, ...more }) as Deno.FileInfo;
  assertEquals(notPrivate(info({}), 1000), undefined);
  assertEquals(notPrivate(info({ mode: 0o40500 }), 1000), undefined);
  assertEquals(notPrivate(info({}), 1001), "it belongs to another user (uid 1000, not 1001)");
  assertEquals(
    notPrivate(info({ mode: 0o40750 }), 1000),
    "other users may use it (mode 750, not 700)",
  );
  assertEquals(
    notPrivate(info({ mode: 0o41777 }), 1000),
    "other users may use it (mode 777, not 700)",
  );
  assertEquals(
    notPrivate(info({ isSymlink: true, isDirectory: false }), 1000),
    "it is a symbolic link (it could lead anywhere)",
  );
  assertEquals(
    notPrivate(info({ isDirectory: false, isFile: true }), 1000),
    "it is not a directory",
  );
});

test(
  "lesson 17: a stale socket file we may not remove is one line, exit 1",
  withRuntime(async () => {
    const killed = await start();
    await killed.stop("SIGKILL"); // the stale file stays
    // Make the directory refuse the removal: read-only for a normal user; root passes every
    // permission check, so for root the directory is made immutable (chattr +i) instead.
    const root = (await Deno.lstat(runtime.dir)).uid === 0; // we made it: its owner is us
    const lock = async (on: boolean) => {
      if (!root) return await Deno.chmod(runtime.private, on ? 0o500 : 0o700);
      const chattr = await new Deno.Command("chattr", {
        args: [on ? "+i" : "-i", runtime.private],
        stderr: "piped",
      }).output();
      assertEquals(chattr.code, 0, new TextDecoder().decode(chattr.stderr));
    };
    await lock(true);
    try {
      const server = await run("lesson17-server", []);
      assertEquals([server.code, server.stdout, server.stderr], [
        1,
        "",
        `cannot remove the stale socket file ${PATH}: permission denied (another user's file?); ` +
        "choose another --path\n",
      ]);
    } finally {
      await lock(false);
    }
  }),
);
