import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { UsageError } from "../lib/errors.ts";
import { defaultPort, parseFlags, taskName, usage } from "../lib/flags.ts";

const spec = {
  lesson: 2,
  role: "client" as const,
  summary: "Sends a message.",
  flags: {
    message: { type: "string" as const, description: "text to send", default: "Hello, world" },
    count: { type: "number" as const, description: "how many", default: 1, min: 1, max: 10 },
    hold: { type: "number" as const, description: "seconds", default: 0, integer: false },
    split: { type: "boolean" as const, description: "split writes" },
    line: { type: "list" as const, description: "a line to send" },
  },
};

Deno.test("parseFlags", async (t) => {
  await t.step("defaults: 127.0.0.1, the lesson's own port, flag defaults", () => {
    const flags = parseFlags([], spec);
    assertEquals(flags.host, "127.0.0.1");
    assertEquals(flags.port, 65402);
    assertEquals(flags.message, "Hello, world");
    assertEquals(flags.count, 1);
    assertEquals(flags.split, false);
    assertEquals(flags.line, []);
    assertEquals(flags.positionals, []);
  });
  await t.step("parses every kind of flag", () => {
    const flags = parseFlags(
      [
        "--host",
        "::1",
        "--port=7",
        "--message",
        "hi there",
        "--count",
        "3",
        "--hold",
        "0.5",
        "--split",
        "--line",
        "a",
        "--line",
        "b",
      ],
      spec,
    );
    assertEquals(
      [flags.host, flags.port, flags.message, flags.count, flags.hold, flags.split, flags.line],
      ["::1", 7, "hi there", 3, 0.5, true, ["a", "b"]],
    );
  });
  await t.step("ignores a leading -- (as deno task passes it)", () => {
    assertEquals(parseFlags(["--", "--port", "5"], spec).port, 5);
  });
  await t.step("a flag given twice keeps the last value", () => {
    assertEquals(parseFlags(["--port", "1", "--port", "2"], spec).port, 2);
  });
  await t.step("rejects bad ports with a clear message", () => {
    for (const bad of ["abc", "-1", "65536", "1.5", ""]) {
      const error = assertThrows(() => parseFlags(["--port", bad], spec), UsageError);
      assertEquals(error.exitCode, 2);
      assertStringIncludes(error.message, "--port");
    }
    const server = { ...spec, role: "server" as const };
    const error = assertThrows(() => parseFlags(["--port", "70000"], server), UsageError);
    assertEquals(error.message, '--port must be a whole number from 0 to 65535, got "70000"');
  });
  await t.step("a client may not use port 0 (only a server can ask for any free port)", () => {
    const client = { ...spec, role: "client" as const };
    const error = assertThrows(() => parseFlags(["--port", "0"], client), UsageError);
    assertEquals(error.message, '--port must be a whole number from 1 to 65535, got "0"');
    assertEquals(parseFlags(["--port", "0"], { ...spec, role: "server" as const }).port, 0);
    assertEquals(parseFlags(["--port", "1"], client).port, 1);
  });
  await t.step("rejects --port with no value", () => {
    const error = assertThrows(() => parseFlags(["--port"], spec), UsageError);
    assertEquals(error.message, "--port needs a value (see --help)");
  });
  await t.step("checks lesson number flags against their range", () => {
    const error = assertThrows(() => parseFlags(["--count", "11"], spec), UsageError);
    assertEquals(error.message, '--count must be a whole number from 1 to 10, got "11"');
  });
  await t.step("rejects unknown options and stray arguments", () => {
    assertEquals(
      assertThrows(() => parseFlags(["--colour=red"], spec), UsageError).message,
      "unknown option --colour (see --help)",
    );
    assertEquals(
      assertThrows(() => parseFlags(["hello"], spec), UsageError).message,
      'unexpected argument "hello" (see --help)',
    );
  });
  await t.step("positionals stay text, as typed (a value such as 0123 keeps its zero)", () => {
    const withPositionals = { ...spec, positionals: "COMMAND [ARGS...]" };
    assertEquals(
      parseFlags(["set", "a", "0123456789", "1e3"], withPositionals).positionals,
      ["set", "a", "0123456789", "1e3"],
    );
  });
  await t.step("accepts positionals when the program declares them", () => {
    const flags = parseFlags(["set", "color", "blue"], {
      ...spec,
      positionals: "COMMAND [ARGS...]",
    });
    assertEquals(flags.positionals, ["set", "color", "blue"]);
  });
});

Deno.test("usage names the task, every flag and its default", () => {
  const text = usage(spec);
  assertStringIncludes(text, "Usage: deno task lesson02-client [OPTIONS]");
  assertStringIncludes(text, "--port PORT");
  assertStringIncludes(text, "(default 65402)");
  assertStringIncludes(text, "--message MESSAGE");
  assertStringIncludes(text, '(default "Hello, world")');
  assertStringIncludes(text, "--line LINE");
  assertStringIncludes(text, "(repeatable)");
  assertStringIncludes(text, "--help");
});

Deno.test("task names and default ports follow the lesson number", () => {
  assertEquals(taskName(3, "server"), "lesson03-server");
  assertEquals(defaultPort(1), 65401);
  assertEquals(defaultPort(19), 65419);
});

Deno.test("hostPort: false: no --host/--port in the usage or the flags (a socket path instead)", () => {
  const unix = {
    lesson: 17,
    role: "server" as const,
    summary: "Listens on a Unix socket.",
    hostPort: false as const,
    flags: {
      path: { type: "string" as const, description: "socket path", default: "/tmp/a.sock" },
    },
  };
  const text = usage(unix);
  assertEquals(text.includes("--host"), false);
  assertEquals(text.includes("--port"), false);
  assertStringIncludes(text, '--path PATH  socket path (default "/tmp/a.sock")');
  const flags = parseFlags(["--path", "/tmp/b.sock"], unix);
  assertEquals([flags.path, "host" in flags, "port" in flags], ["/tmp/b.sock", false, false]);
  // Its type says so too, so a program cannot use a port it does not have.
  // @ts-expect-error: with hostPort: false, the flags have no port
  assertEquals(flags.port, undefined);
  const error = assertThrows(() => parseFlags(["--port", "5"], unix), UsageError);
  assertEquals(error.message, "unknown option --port (see --help)");
});
