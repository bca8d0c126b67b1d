/**
 * `deno task bench-fairness`'s command line: --help, and mistakes caught
 * before anything is measured (no benchmark runs here).
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { runTask } from "./_helpers.ts";

const TASK = "bench-fairness";

Deno.test("bench-fairness --help prints the usage and measures nothing", async () => {
  const result = await runTask(TASK, ["--help"]);
  assertEquals([result.code, result.stderr], [0, ""]);
  assertStringIncludes(result.stdout, "deno task bench-fairness [--servers ");
  assertStringIncludes(result.stdout, "--procs");
});

Deno.test("bench-fairness: a bad option is a one-line usage error, before any run", async () => {
  const cases: [string[], string][] = [
    [["--servers", "node,bogus"], '--servers: unknown server "bogus" (choose from node, '],
    [["--servers", "deno:nope"], '--servers: unknown server "deno:nope" ('],
    [["--conections", "20"], "unknown option --conections (see --help)"],
    [["--protocol", "ftp"], '--protocol must be echo or chat, got "ftp"'],
    [["--seconds", "0"], "--seconds must be a positive number"],
  ];
  for (const [args, message] of cases) {
    const result = await runTask(TASK, args);
    assertEquals(result.code, 2, args.join(" "));
    assertEquals(result.stdout, "", args.join(" ")); // nothing measured
    assertEquals(result.stderr.split("\n").filter(Boolean).length, 1, result.stderr);
    assertStringIncludes(result.stderr, message);
  }
});
