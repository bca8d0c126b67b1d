/**
 * The exercise runner's commands (tools/exercise.ts), run as real processes
 * with the tasks' own permissions: --hint, --reset, `exercises --verify`, the
 * hex dump of bytes that differ, the line a passing run prints, and the
 * progress of a long check. The commands that write (hints, reset) run in a
 * copy of the course under tests/artifacts/, never on the learner's files.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { EXERCISES, findExercise, hintsOf } from "../tools/exercise_list.ts";
import { taskArgs } from "../tools/lesson_process.ts";
import { expectedAndCame } from "../tools/exercise.ts";
import { AssertionError } from "@std/assert";
import { runTask } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

/** Copies `from` to `to` (files and folders), leaving out tests/artifacts. */
function copyTree(from: string, to: string): void {
  if (Deno.statSync(from).isFile) return Deno.copyFileSync(from, to);
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isSymlink || entry.name === "artifacts") continue;
    copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** A copy of the course (what a learner downloads), deleted after `work`. */
async function inCourseCopy(work: (copy: string) => Promise<void>): Promise<void> {
  const artifacts = new URL("tests/artifacts/", ROOT).pathname;
  Deno.mkdirSync(artifacts, { recursive: true });
  const copy = Deno.makeTempDirSync({ dir: artifacts, prefix: "course-" });
  try {
    for (
      const name of ["deno.json", "deno.lock", "lib", "lessons", "tests", "tools", "exercises"]
    ) {
      copyTree(new URL(name, ROOT).pathname, `${copy}/${name}`);
    }
    await work(copy);
  } finally {
    Deno.removeSync(copy, { recursive: true });
  }
}

/** Runs a deno task of the course in `cwd` (the task's own permissions, relative to it). */
async function runIn(
  cwd: string,
  task: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("deno", {
    args: [...taskArgs(task), ...args],
    cwd,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  try {
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    }
    const { code, stdout, stderr } = await child.output();
    const text = (bytes: Uint8Array) =>
      new TextDecoder().decode(bytes).replace(/^Download https?:\/\/\S+\n/gm, "");
    return { code, stdout: text(stdout), stderr: text(stderr) };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("exercise NN --hint: the hints one at a time, then the answer, then the first again", async () => {
  await inCourseCopy(async (copy) => {
    const exercise = findExercise("02")!;
    const hints = hintsOf(exercise);
    assert(hints.length >= 2);
    for (const [i, hint] of hints.entries()) {
      const result = await runIn(copy, "exercise", ["02", "--hint"]);
      assertEquals([result.code, result.stderr], [0, ""]);
      assertStringIncludes(result.stdout, `Hint ${i + 1} of ${hints.length}: ${hint}\n`);
    }
    const last = await runIn(copy, "exercise", ["02", "--hint"]);
    assertStringIncludes(
      last.stdout,
      "No more hints for exercise 02: the answer is lessons/02-echo/server.ts.",
    );
    const again = await runIn(copy, "exercise", ["02", "--hint"]);
    assertStringIncludes(again.stdout, `Hint 1 of ${hints.length}: ${hints[0]}\n`);
    // Another exercise has its own count; the state is one small file.
    const other = await runIn(copy, "exercise", ["03", "--hint"]);
    assertStringIncludes(other.stdout, `Hint 1 of `);
    assertEquals(JSON.parse(Deno.readTextFileSync(`${copy}/.exercise-state.json`)), {
      hintsShown: { "02": 1, "03": 1 },
    });
  });
});

Deno.test("exercise NN --reset: the file as shipped, after a y/N question or with --yes", async () => {
  await inCourseCopy(async (copy) => {
    const path = `${copy}/exercises/02-echo/server.ts`;
    const shipped = read("exercises/02-echo/server.ts");
    const edited = shipped.replace("// TODO(exercise)", "// my attempt\n    // TODO(exercise)");
    Deno.writeTextFileSync(path, edited);
    // Not a terminal, no --yes: nothing is changed.
    const refused = await runIn(copy, "exercise", ["02", "--reset"], "y\n");
    assertEquals(
      [refused.code, refused.stderr],
      [2, "--reset replaces exercises/02-echo/server.ts: add --yes to do it without being asked\n"],
    );
    assertEquals(Deno.readTextFileSync(path), edited);
    // On a terminal (script(1) gives it one), "n" keeps the file, "y" resets it.
    for (const [answer, code, after] of [["n", 1, edited], ["y", 0, shipped]] as const) {
      const command = [...taskArgs("exercise"), "02", "--reset"].map((w) => `'${w}'`).join(" ");
      const child = new Deno.Command("script", {
        args: ["-qec", `deno ${command}`, "/dev/null"],
        cwd: copy,
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
        env: { NO_COLOR: "1" },
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const output = child.output();
      const writer = child.stdin.getWriter();
      // Answer once the question is on the terminal.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await writer.write(new TextEncoder().encode(`${answer}\n`));
      await writer.close();
      const result = await output;
      clearTimeout(timer);
      const stdout = new TextDecoder().decode(result.stdout);
      assertStringIncludes(
        stdout,
        "Put exercises/02-echo/server.ts back as shipped? Your changes to it will be lost. [y/N] ",
      );
      assertEquals(result.code, code, stdout);
      assertEquals(Deno.readTextFileSync(path), after);
    }
    // --yes: no question.
    Deno.writeTextFileSync(path, edited);
    const yes = await runIn(copy, "exercise", ["02", "--reset", "--yes"]);
    assertEquals([yes.code, yes.stderr], [0, ""]);
    assertEquals(
      yes.stdout,
      "exercises/02-echo/server.ts is back as shipped: its TODO(exercise) is yours to write again.\n",
    );
    assertEquals(Deno.readTextFileSync(path), shipped);
    // A deleted file comes back too.
    Deno.removeSync(path);
    assertEquals((await runIn(copy, "exercise", ["02", "--reset", "--yes"])).code, 0);
    assertEquals(Deno.readTextFileSync(path), shipped);
  });
});

Deno.test("exercises --verify: each exercise in order, stopping at the first that fails", async () => {
  await inCourseCopy(async (copy) => {
    // Exercises 01 and 02 solved (the lessons' files), 03 untouched.
    for (const dir of ["01-first-connection", "02-echo"]) {
      Deno.copyFileSync(`${copy}/lessons/${dir}/server.ts`, `${copy}/exercises/${dir}/server.ts`);
    }
    const result = await runIn(copy, "exercises", ["--verify"]);
    assertEquals([result.code, result.stderr], [1, ""], result.stdout);
    const lines = result.stdout.split("\n");
    assertEquals(lines[0], `01  passes: ${findExercise("01")!.proved}`);
    assertEquals(lines[1], `02  passes: ${findExercise("02")!.proved}`);
    assertEquals(lines[2], `03  does not pass yet: ${findExercise("03")!.task}`);
    assertStringIncludes(result.stdout, "\nThe check that failed: lesson 03: ");
    assertStringIncludes(
      result.stdout,
      `\n2 of ${EXERCISES.length} exercises pass; exercise 03 is next.\n` +
        "Next step: write the TODO(exercise) part of exercises/03-capitalize/server.ts, then run " +
        "deno task exercise 03 --watch (and --hint if you are stuck).\n",
    );
    assert(!result.stdout.includes("\n05  "), "it went on past the first failure");
    // Nothing is left behind.
    assertEquals([...Deno.readDirSync(copy)].map((e) => e.name).includes(".exercise-runs"), false);
  });
});

Deno.test("exercise: bytes that differ are shown as a hex dump, side by side", async () => {
  // Lesson 02's server with `conn.write(chunk)`: a write that sends only part loses the rest.
  const artifacts = new URL("tests/artifacts/", ROOT).pathname;
  Deno.mkdirSync(artifacts, { recursive: true });
  const file = `${Deno.makeTempDirSync({ dir: artifacts })}/server.ts`;
  try {
    const from = 'await writeAllWithTimeout(conn, chunk, idleTimeoutMs, "the client");';
    const solution = read("lessons/02-echo/server.ts");
    assertStringIncludes(solution, from);
    Deno.writeTextFileSync(file, solution.replace(from, "await conn.write(chunk);"));
    const result = await runTask("exercise", ["02", "--file", file, "--only", "reads slowly"], {
      timeoutMs: 60_000,
    });
    assertEquals([result.code, result.stderr], [1, ""], result.stdout);
    assertMatch(
      result.stdout,
      /\n {4}the echo: \d+ bytes came, 8388608 were expected; the first difference is at byte \d+ \(0x[0-9a-f]+\):\n {4}offset {4}came {34}expected\n/,
    );
    // Rows of 8 bytes a side, in hex and as characters, a ! where they differ.
    assertMatch(
      result.stdout,
      /\n {4}[0-9a-f]{8} {2}([0-9a-f]{2} ){7}[0-9a-f]{2} {2}\|.{8}\| {2}! ([0-9a-f]{2} ){7}[0-9a-f]{2} {2}\|.{8}\|\n/,
    );
    assertStringIncludes(result.stdout, "Hint: A single write may send only part");
  } finally {
    Deno.removeSync(file.replace(/\/server\.ts$/, ""), { recursive: true });
  }
});

Deno.test("exercise: a passing run says what the learner just proved", async () => {
  const result = await runTask("exercise", ["06", "--file", "lessons/06-length-prefix/server.ts"], {
    timeoutMs: 120_000,
  });
  assertEquals([result.code, result.stderr], [0, ""], result.stdout);
  assertStringIncludes(
    result.stdout,
    "\nExercise 06 passes: every check of lesson 06.\n" +
      `You just proved that ${findExercise("06")!.proved}\nNext: deno task exercise 07 (`,
  );
});

Deno.test("exercise: a check that runs for seconds says so while it runs", async () => {
  // Lesson 08's --hold check holds clients for 1 s, then 3 clients for 1 s each, one at a time.
  const result = await runTask(
    "exercise",
    ["08", "--file", "lessons/08-many-clients/server.ts", "--only", "--hold"],
    { timeoutMs: 120_000 },
  );
  assertEquals([result.code, result.stderr], [0, ""], result.stdout);
  assertMatch(
    result.stdout,
    /\n {2}\.\.\. {3}lesson 08: --hold shows lesson 02's queue.* \(running, [3-9] s so far\)\n/,
  );
  assertStringIncludes(result.stdout, "\n  ok    lesson 08: --hold shows lesson 02's queue");
  // --only ran one check, not all: no claim that the exercise is done.
  assertStringIncludes(result.stdout, "\nExercise 08 passes the checks chosen with --only.");
  assert(!result.stdout.includes("You just proved"));
});

Deno.test("exercise --only: no check of that name is one failure, not a pass", async () => {
  const result = await runTask("exercise", ["02", "--only", "no such check"]);
  assertEquals(result.code, 1);
  assertStringIncludes(result.stdout, 'no check of exercise 02 has "no such check" in its name');
});

Deno.test("exercise: a long diff is cut to the lines around its first difference", () => {
  // What std's assertEquals says of two arrays of 1,000 numbers that differ at index 500.
  const same = (i: number) => `        ${i},`;
  const diff = [
    "Values are not equal.",
    "",
    "",
    "    [Diff] Actual / Expected",
    "",
    "",
    "    Uint8Array(1000) [",
    ...Array.from({ length: 500 }, (_, i) => same(i)),
    "-       1,",
    "+       2,",
    ...Array.from({ length: 499 }, (_, i) => same(501 + i)),
    "    ]",
  ].join("\n");
  const shown = expectedAndCame(new AssertionError(diff)).split("\n");
  assertEquals(shown[0], "    (lines with - are what came, lines with + what was expected)");
  assertEquals(shown[1], "      ... (496 lines the same on both sides)");
  assertEquals(shown.slice(2, 9), [
    "          495,",
    "          496,",
    "          497,",
    "          498,",
    "          499,",
    "  -       1,",
    "  +       2,",
  ]);
  assertEquals(shown.at(-1), "      ... (467 more lines)");
  assertEquals(shown.length, 2 + 40 + 1);
});
