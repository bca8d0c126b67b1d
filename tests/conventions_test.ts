/**
 * What every lesson program promises (DEVELOPERS.md "Conventions"), checked
 * for every lessonNN-server / lessonNN-client task in deno.json.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { closedPort, LessonServer, runTask } from "./_helpers.ts";

const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
const lessonTasks = Object.keys(config.tasks).filter((name) =>
  /^lesson\d\d-(server|client)$/.test(name)
);
const servers = lessonTasks.filter((name) => name.endsWith("-server"));
const clients = lessonTasks.filter((name) => name.endsWith("-client"));

/** Arguments a client needs besides --port to make one request. */
const CLIENT_ARGS: Record<string, string[]> = {
  "lesson03-client": ["--message", "hi"],
  "lesson07-client": ["keys"],
  // Lesson 18's client reads the lesson's CA file; --no-ca needs none.
  "lesson18-client": ["--no-ca"],
  "lesson14-client": ["--get", "x", "--timeout", "0.05", "--tries", "2"],
  "lesson15-client": ["--retries", "0"],
};

/**
 * Exceptions to "no server: connection refused". Lesson 14 speaks UDP: there
 * is no connection to refuse, so its client sends, waits, tries again (saying
 * so on stdout), and then says that no reply came (still one line, exit 1).
 */
const NO_SERVER: Record<string, (port: number) => { stdout: string; stderr: string }> = {
  "lesson14-client": (port) => ({
    stdout: "> x\nno reply within 50 ms: sending again, waiting up to 100 ms (try 2 of 2)\n> x\n",
    stderr: `no reply after 2 tries over 0.15 s: is the server running at 127.0.0.1:${port}? ` +
      "(UDP cannot tell a missing server from a lost datagram) " +
      "start it with: deno task lesson14-server\n",
  }),
  // Lesson 15's client logs each failed attempt on stdout, with the OS error
  // name, and a summary; the exit line is the usual one.
  "lesson15-client": (port) => {
    const refused = `could not connect to 127.0.0.1:${port}: connection refused: ` +
      "is the server running? start it with: deno task lesson15-server";
    return {
      stdout: `! #1 ${refused} [ECONNREFUSED]\n  no retries left: #1 is lost\n` +
        "1 request: 0 answered, 1 lost; 1 attempt, 0 reconnects\n",
      stderr: `${refused}\n`,
    };
  },
};

/**
 * Lessons whose programs use a Unix socket path instead of a port (lesson
 * 17): no --host/--port, and their path plays the port's part in each check.
 * Their default path is in $XDG_RUNTIME_DIR: these checks give them one of
 * their own (a temporary directory), so a learner's running server is never
 * in the way (it is made afresh on every run).
 */
const UNIX_RUNTIME_DIR = `${Deno.cwd()}/tests/artifacts/conventions-17`; // git-ignored
await Deno.remove(UNIX_RUNTIME_DIR, { recursive: true }).catch(() => {});
await Deno.mkdir(UNIX_RUNTIME_DIR, { recursive: true, mode: 0o700 });
const UNIX_ENV = { XDG_RUNTIME_DIR: UNIX_RUNTIME_DIR };
const UNIX_SOCKET_PATHS: Record<string, string> = {
  "17": `${UNIX_RUNTIME_DIR}/deno-socket-lessons/lesson17.sock`,
};

/**
 * Tasks a server needs run once before it can start, when a file it needs
 * is missing: lesson 18's server needs the certificates of lesson18-certs.
 */
const SERVER_SETUP: Record<string, { needs: string; task: string }> = {
  "lesson18-server": { needs: "lessons/18-tls/certs/server.crt", task: "lesson18-certs" },
};

async function setUp(task: string) {
  const setup = SERVER_SETUP[task];
  if (!setup) return;
  try {
    await Deno.stat(setup.needs);
  } catch {
    const result = await runTask(setup.task, []);
    assertEquals(result.code, 0, result.stderr);
  }
}

function assertNoStackTrace(stderr: string) {
  assert(!/^\s+at /m.test(stderr), `stack trace in stderr:\n${stderr}`);
  assert(!stderr.includes("error: Uncaught"), `uncaught error in stderr:\n${stderr}`);
}

Deno.test("every lesson task has a description and no -A", () => {
  for (const name of lessonTasks) {
    const task = config.tasks[name];
    assert(typeof task.description === "string" && task.description.length > 10, name);
    assert(!/\s(-A|--allow-all)\b/.test(task.command), `${name} must not use -A`);
  }
});

for (const task of [...servers, ...clients]) {
  const lesson = Number(task.slice(6, 8));
  const role = task.endsWith("server") ? "server" : "client";
  const unixPath = UNIX_SOCKET_PATHS[task.slice(6, 8)];
  if (unixPath) {
    Deno.test(`${task} follows the conventions (Unix socket: a path, not a port)`, async (t) => {
      await t.step("--help prints usage with the default path and exits 0", async () => {
        const result = await runTask(task, ["--help"], { env: UNIX_ENV });
        assertEquals(result.code, 0);
        assertStringIncludes(result.stdout, `Usage: deno task ${task}`);
        assertStringIncludes(result.stdout, `(default "${unixPath}")`);
        assertEquals(result.stdout.includes("--port"), false);
      });
      await t.step("a leading -- is ignored; --port is an unknown option, exit 2", async () => {
        assertEquals((await runTask(task, ["--", "--help"], { env: UNIX_ENV })).code, 0);
        const result = await runTask(task, ["--port", "70000"], { env: UNIX_ENV });
        assertEquals([result.code, result.stderr], [2, "unknown option --port (see --help)\n"]);
      });
      if (role === "server") {
        await t.step("a path in use is a one-line error, exit 1", async () => {
          await using first = await LessonServer.start(task, [], 20_000, { env: UNIX_ENV });
          assertEquals(first.lines.at(-1), `listening on unix:${unixPath}`);
          const result = await runTask(task, [], { env: UNIX_ENV });
          assertEquals(result.code, 1);
          assertStringIncludes(result.stderr, `unix:${unixPath} is in use by a running server`);
          assertNoStackTrace(result.stderr);
        });
      } else {
        await t.step("no server: no socket file, one line, exit 1", async () => {
          const result = await runTask(task, [...(CLIENT_ARGS[task] ?? []), "--message", "hi"], {
            env: UNIX_ENV,
          });
          assertEquals([result.code, result.stderr], [
            1,
            `could not connect to unix:${unixPath}: no such socket file: is the server running? ` +
            `start it with: deno task lesson${task.slice(6, 8)}-server\n`,
          ]);
        });
      }
    });
    continue;
  }
  Deno.test(`${task} follows the conventions`, async (t) => {
    await t.step("--help prints usage and exits 0", async () => {
      const result = await runTask(task, ["--help"]);
      assertEquals(result.code, 0);
      assertStringIncludes(result.stdout, `Usage: deno task ${task}`);
      assertStringIncludes(result.stdout, `(default ${65400 + lesson})`);
    });
    await t.step("a leading -- is ignored", async () => {
      const result = await runTask(task, ["--", "--help"]);
      assertEquals(result.code, 0);
      assertStringIncludes(result.stdout, "Usage:");
    });
    await t.step("an invalid port is a one-line error, exit 2", async () => {
      const result = await runTask(task, ["--port", "70000"]);
      assertEquals(result.code, 2);
      const lowest = role === "server" ? 0 : 1;
      assertEquals(
        result.stderr,
        `--port must be a whole number from ${lowest} to 65535, got "70000"\n`,
      );
    });
    await t.step("an unknown option is a one-line error, exit 2", async () => {
      const result = await runTask(task, ["--colour", "red"]);
      assertEquals(result.code, 2);
      assertEquals(result.stderr, "unknown option --colour (see --help)\n");
    });
    if (role === "server") {
      await setUp(task);
      await t.step("a port in use is a one-line error, exit 1", async () => {
        await using first = await LessonServer.start(task);
        const result = await runTask(task, ["--port", String(first.port)]);
        assertEquals(result.code, 1);
        assertEquals(
          result.stderr,
          `port ${first.port} is already in use: is another server running? stop it, or try --port 0\n`,
        );
        assertNoStackTrace(result.stderr);
      });
      await t.step("--port 0 listens on 127.0.0.1 and prints the real port", async () => {
        await using server = await LessonServer.start(task);
        assertEquals(server.host, "127.0.0.1");
        assert(server.port > 0);
        assertMatch(server.lines[0], /^listening on 127\.0\.0\.1:\d+$/);
      });
    } else {
      await t.step("no server: connection refused, one line, exit 1", async () => {
        const port = closedPort();
        const result = await runTask(task, [...(CLIENT_ARGS[task] ?? []), "--port", String(port)]);
        assertEquals(result.code, 1);
        const expected = NO_SERVER[task]?.(port) ?? {
          stdout: "",
          stderr: `could not connect to 127.0.0.1:${port}: connection refused: ` +
            `is the server running? start it with: deno task lesson${task.slice(6, 8)}-server\n`,
        };
        assertEquals({ stdout: result.stdout, stderr: result.stderr }, expected);
      });
    }
  });
}
