/**
 * `deno task tour > tour.txt` is plain text: colour only on a terminal, and
 * never with NO_COLOR (tools/colors.ts).
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { taskArgs } from "../tools/lesson_process.ts";

const ESC = "\x1b";

async function tour(args: string[], env: Record<string, string>) {
  const output = await new Deno.Command("deno", {
    args: [...taskArgs("tour"), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("the tour piped into a file has no colour codes", async () => {
  // NO_COLOR empty counts as unset (no-color.org): only the pipe may turn colour off here.
  const result = await tour(["01"], { NO_COLOR: "" });
  assertEquals(result.code, 0, result.stderr);
  assertStringIncludes(result.stdout, "== Lesson 01");
  assertEquals(result.stdout.trimEnd().split("\n").at(-1), "1 lessons, 1 ok");
  assert(!result.stdout.includes(ESC), `escape codes in piped output: ${JSON.stringify(result)}`);
});

Deno.test("the tour: an unknown lesson number is a one-line usage error", async () => {
  const result = await tour(["99"], { NO_COLOR: "" });
  assertEquals([result.code, result.stdout, result.stderr], [
    2,
    "",
    "no lesson 99: give two-digit lesson numbers, e.g. 05 (see --help)\n",
  ]);
});
