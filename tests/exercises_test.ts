/**
 * The exercises (exercises/, tools/exercise.ts): each is its lesson's file with
 * a TODO in place of the key part; untouched it fails the lesson's own checks,
 * with the lesson's file copied over it it passes them (CI runs both, for
 * every exercise); and a learner sees what failed, what came, and a hint.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { EXERCISES } from "../tools/exercise_list.ts";
import { taskArgs } from "../tools/lesson_process.ts";
import { runTask } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));
/** The module specifiers a file imports, in order. */
const imports = (source: string) =>
  [...source.matchAll(/^(?:import|export)[^;]*? from "([^"]+)";/gms)].map((m) => m[1]);

Deno.test("exercises: each is its lesson's file with a TODO, listed, and named by its README", () => {
  const folders = [...Deno.readDirSync(new URL("exercises/", ROOT))]
    .filter((entry) => entry.isDirectory).map((entry) => entry.name).sort();
  assertEquals(folders, EXERCISES.map((exercise) => exercise.dir));
  for (const exercise of EXERCISES) {
    const path = `exercises/${exercise.dir}/${exercise.file}`;
    const lessonFile = read(`lessons/${exercise.dir}/${exercise.file}`);
    const exerciseFile = read(path);
    assertMatch(exerciseFile, /\/\/ TODO\(exercise\): \S/, path);
    assert(exerciseFile !== lessonFile, `${path} is the lesson's file`);
    // The same imports, so the lesson's file copied over it (and back) resolves the same.
    assertEquals(imports(exerciseFile), imports(lessonFile), path);
    for (const specifier of imports(exerciseFile).filter((s) => s.startsWith("."))) {
      Deno.statSync(new URL(specifier, new URL(path, ROOT))); // throws if it does not resolve
    }
    assertEquals(exercise.lesson, exercise.dir.slice(0, 2));
    const readme = read(`lessons/${exercise.dir}/README.md`);
    const last = readme.slice(readme.lastIndexOf("\n## "));
    assert(last.startsWith("\n## Your turn\n"), `${exercise.dir}/README.md ends with Your turn`);
    assertStringIncludes(last, `deno task exercise ${exercise.lesson}`);
    assertStringIncludes(last, path);
    for (const file of exercise.tests) {
      assertStringIncludes(read(`tests/${file}`), 'import { test } from "./_checks.ts";');
    }
  }
});

Deno.test("exercises: each is kept as shipped in tools/exercises_shipped/, for --reset", () => {
  const kept = [...Deno.readDirSync(new URL("tools/exercises_shipped/", ROOT))]
    .filter((entry) => entry.isDirectory).map((entry) => entry.name).sort();
  assertEquals(kept, EXERCISES.map((exercise) => exercise.dir));
  for (const exercise of EXERCISES) {
    const path = `exercises/${exercise.dir}/${exercise.file}`;
    assertEquals(
      read(`tools/exercises_shipped/${exercise.dir}/${exercise.file}.orig`),
      read(path),
      `tools/exercises_shipped/${exercise.dir}/${exercise.file}.orig is not ${path}: copy it there`,
    );
  }
});

/** What is in .exercise-runs/, or undefined if it is gone (as it should be after a run). */
function scratchLeft(): string[] | undefined {
  try {
    return [...Deno.readDirSync(new URL(".exercise-runs/", ROOT))].map((entry) => entry.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Every file under exercises/, with its text. */
function snapshot(): Map<string, string> {
  const files = new Map<string, string>();
  for (const exercise of EXERCISES) {
    for (const entry of Deno.readDirSync(new URL(`exercises/${exercise.dir}/`, ROOT))) {
      const path = `exercises/${exercise.dir}/${entry.name}`;
      files.set(path, read(path));
    }
  }
  return files;
}

/**
 * The hunks where `exercise` differs from `lesson` (a line diff, by longest
 * common subsequence): for each, the lesson's line number and both sides' lines.
 */
function hunks(lesson: string[], exercise: string[]) {
  const n = lesson.length, m = exercise.length;
  const common = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      common[i][j] = lesson[i] === exercise[j]
        ? common[i + 1][j + 1] + 1
        : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const out: { line: number; removed: string[]; added: string[] }[] = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && lesson[i] === exercise[j]) {
      i++, j++;
      continue;
    }
    const hunk = { line: i + 1, removed: [] as string[], added: [] as string[] };
    while ((i < n || j < m) && !(i < n && j < m && lesson[i] === exercise[j])) {
      if (j >= m || (i < n && common[i + 1][j] >= common[i][j + 1])) hunk.removed.push(lesson[i++]);
      else hunk.added.push(exercise[j++]);
    }
    out.push(hunk);
  }
  return out;
}

Deno.test("exercises: each differs from its lesson's file only in its header and TODO parts", () => {
  for (const exercise of EXERCISES) {
    const path = `exercises/${exercise.dir}/${exercise.file}`;
    const lessonPath = `lessons/${exercise.dir}/${exercise.file}`;
    // The header: a lint note, then EXERCISE lines at the top of the lesson's doc comment.
    const text = read(path);
    const header = text.match(
      /^(\/\/ deno-lint-ignore-file .*\n)\/\*\*\n( \* EXERCISE [^]*? \*\n)/,
    );
    if (!header) throw new Error(`${path} does not start with its lint note and EXERCISE lines`);
    const body = text.replace(header[1], "").replace(header[2], "");
    const changes = hunks(read(lessonPath).split("\n"), body.split("\n"));
    assert(changes.length > 0, `${path} has no TODO part`);
    for (const change of changes) {
      assert(
        change.added.some((line) => line.includes("// TODO(exercise): ")),
        `${path} is out of date: ${lessonPath} line ${change.line} changed outside the part ` +
          `the exercise takes out; make the same change in the exercise:\n` +
          change.removed.map((l) => `- ${l}`).concat(change.added.map((l) => `+ ${l}`)).join("\n"),
      );
    }
  }
});

Deno.test("exercises: every one fails untouched and passes with its lesson's file copied in", async () => {
  const before = snapshot();
  // 19 exercises took 182 s on a shared 2-core machine: room for twice that.
  const result = await runTask("exercise", ["--self-check"], { timeoutMs: 420_000 });
  // The learner's files are never changed, and the scratch copies are gone, their folder too.
  assertEquals(snapshot(), before);
  assertEquals(scratchLeft(), undefined);
  const lines = result.stdout.split("\n");
  for (const exercise of EXERCISES) {
    const line = lines.find((l) => l.startsWith(`exercise ${exercise.lesson}: `)) ?? "(none)";
    assertMatch(
      line,
      new RegExp(
        `^exercise ${exercise.lesson}: untouched fails \\(.+\\); ` +
          `with lessons/${exercise.dir}/${exercise.file}: passes \\d+ checks? \\[\\d+\\.\\d s\\]$`,
      ),
      result.stdout,
    );
  }
  // The progress table, from the same outcomes: nothing passes untouched, everything solved.
  const untouched = lines.indexOf("progress, untouched:");
  const solved = lines.indexOf("progress, solved:");
  const rows = (from: number) => lines.slice(from + 1, from + 1 + EXERCISES.length);
  for (const [i, row] of rows(untouched).entries()) {
    assertMatch(
      row,
      new RegExp(`^${EXERCISES[i].lesson}  .+  not yet \\(\\d+ checks? passed, then: `),
    );
  }
  assertEquals(
    lines[untouched + 1 + EXERCISES.length],
    `0 of ${EXERCISES.length} exercises pass. Next: deno task exercise 01 (exercises/01-first-connection/server.ts)`,
  );
  for (const [i, row] of rows(solved).entries()) {
    assertMatch(row, new RegExp(`^${EXERCISES[i].lesson}  .+  passed \\(\\d+ checks?\\)$`));
  }
  assertEquals(lines[solved + 1 + EXERCISES.length], `All ${EXERCISES.length} exercises pass.`);
  assertEquals([result.code, result.timedOut, result.stderr], [0, false, ""]);
});

Deno.test("exercise 02 untouched: the failed check, what was expected and what came, a hint", async () => {
  const result = await runTask("exercise", ["02"]);
  assertEquals([result.code, result.stderr], [1, ""]);
  assertEquals(result.stdout.split("\n").slice(0, 3), [
    "Exercise 02: the echo loop: read until EOF, write it all back",
    "exercises/02-echo/server.ts in the place of lessons/02-echo/server.ts, checked by " +
    "tests/lesson02_test.ts and tests/lesson02_short_write_test.ts",
    "  FAIL  lesson 02: echo › the default message is echoed and printed JSON-quoted",
  ]);
  for (
    const expected of [
      "The check that failed: lesson 02: echo › the default message is echoed and printed JSON-quoted\n",
      "What was expected, and what came:\n    (lines with - are what came, lines with + what was expected)\n",
      "  -     1,\n  +     0,\n  +     'Received \"Hello, world\"\\n',\n",
      '  -     "the server closed the connection before answering\\n",\n',
      "lesson02-client printed on stderr:\n    the server closed the connection before answering\n",
      "Hint: One read is whatever has arrived, and one write may send only part of it",
      "\nMore help: deno task exercise 02 --hint\n",
    ]
  ) assertStringIncludes(result.stdout, expected);
  assertEquals(scratchLeft(), undefined);
  // Where the assertion is, with its code.
  assertMatch(
    result.stdout,
    /\n {2}tests\/lesson02_test\.ts:\d+: assertEquals\(\[client\.code, client\.stdout, client\.stderr\], \[0, /,
  );
});

Deno.test("exercise: a bad command line is one line and exit 2", async () => {
  for (
    const [args, stderr] of [
      [["99"], "no exercise 99: see --help\n"],
      [["02", "--fast"], "unknown option --fast: see --help\n"],
    ] as [string[], string][]
  ) {
    const result = await runTask("exercise", args);
    assertEquals([result.code, result.stdout, result.stderr], [2, "", stderr]);
  }
  const help = await runTask("exercise", ["--help"]);
  assertEquals(help.code, 0);
  for (const exercise of EXERCISES) {
    assertStringIncludes(
      help.stdout,
      `  ${exercise.lesson}  exercises/${exercise.dir}/${exercise.file}`,
    );
  }
});

/**
 * Runs `deno task exercise 02 --watch`, calling `onOutput` with all it has
 * printed so far after each piece, until `onOutput` returns true (20 s at most).
 * Returns the output.
 */
async function watch02(
  onOutput: (output: string) => boolean | Promise<boolean>,
): Promise<string> {
  const child = new Deno.Command("deno", {
    args: [...taskArgs("exercise"), "02", "--watch"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  let output = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const decoder = new TextDecoder();
    for await (const piece of child.stdout) {
      output += decoder.decode(piece, { stream: true });
      if (await onOutput(output)) break;
    }
    return output;
  } finally {
    clearTimeout(deadline);
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.stdout.cancel().catch(() => {});
    await child.status;
  }
}

Deno.test("exercise --watch checks once, then waits for a save", async () => {
  const output = await watch02((output) => output.includes("watching exercises/02-echo/"));
  assertStringIncludes(output, "  FAIL  lesson 02: echo › the default message");
  assertStringIncludes(
    output,
    "\nwatching exercises/02-echo/: save to check again (Ctrl-C to stop)\n",
  );
});

Deno.test("exercise --watch checks again for a save made during a check", async () => {
  const path = "exercises/02-echo/server.ts";
  const text = read(path);
  let saved = false;
  const output = await watch02(async (output) => {
    // The first check has started: save the file (unchanged) while it runs. The
    // tests may not write exercises/, so a deno allowed to write that one file does.
    if (!saved && output.includes("Exercise 02:")) {
      saved = true;
      const save = `Deno.writeTextFileSync("${path}", Deno.readTextFileSync("${path}"))`;
      const { code } = await new Deno.Command("deno", {
        args: ["eval", `--allow-read=${path}`, `--allow-write=${path}`, save],
        cwd: ROOT,
      }).output();
      assertEquals(code, 0);
    }
    return output.split("watching exercises/02-echo/").length === 3; // two checks done
  });
  assertEquals(output.split("\nExercise 02: ").length, 3, output); // checked twice
  assertEquals(read(path), text);
});

Deno.test("exercise: Ctrl-C during a check deletes its scratch copy", async () => {
  const scratch = new URL(".exercise-runs/", ROOT);
  const entries = () => {
    try {
      return [...Deno.readDirSync(scratch)].map((entry) => entry.name);
    } catch {
      return []; // not made yet
    }
  };
  const before = entries();
  const child = new Deno.Command("deno", {
    args: [...taskArgs("exercise"), "02"],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Wait (10 s at most) for its scratch copy to appear, then press Ctrl-C.
  let copy: string | undefined;
  for (let waited = 0; !copy && waited < 10_000; waited += 20) {
    copy = entries().find((name) => name.startsWith("02-echo-") && !before.includes(name));
    if (!copy) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill(copy ? "SIGINT" : "SIGKILL");
  const status = await child.status;
  if (!copy) throw new Error("no scratch copy appeared in .exercise-runs/");
  assertEquals(status.code, 130);
  assertEquals(entries().filter((name) => name === copy), [], "the scratch copy was left behind");
  assertEquals(scratchLeft(), undefined, ".exercise-runs/ was left behind");
});

Deno.test("exercise: a missing exercise file is one line and exit 2", async () => {
  // The tool in a copy of the course without exercises/ (the tests may not delete a learner's file).
  const artifacts = new URL("tests/artifacts/", ROOT).pathname; // not in a fresh clone
  Deno.mkdirSync(artifacts, { recursive: true });
  const copy = Deno.makeTempDirSync({ dir: artifacts });
  try {
    for (const dir of ["tools", "lib", "tests"]) Deno.mkdirSync(`${copy}/${dir}`);
    for (const entry of [...Deno.readDirSync(new URL("tools/", ROOT))].filter((e) => e.isFile)) {
      Deno.copyFileSync(new URL(`tools/${entry.name}`, ROOT), `${copy}/tools/${entry.name}`);
    }
    for (const entry of [...Deno.readDirSync(new URL("lib/", ROOT))]) {
      Deno.copyFileSync(new URL(`lib/${entry.name}`, ROOT), `${copy}/lib/${entry.name}`);
    }
    for (const file of ["deno.lock", "tests/_checks.ts"]) {
      Deno.copyFileSync(new URL(file, ROOT), `${copy}/${file}`);
    }
    // deno.json's imports only (its workspace members are not in the copy).
    const { imports } = JSON.parse(read("deno.json"));
    Deno.writeTextFileSync(`${copy}/deno.json`, JSON.stringify({ imports }));
    for (const args of [["02"], ["02", "--watch"], ["--progress"]]) {
      // --quiet: no warning that the copy's deno.json is not in the course's workspace.
      const { code, stdout, stderr } = await new Deno.Command("deno", {
        args: [
          "run",
          "--no-prompt",
          "--quiet",
          `--allow-read=${copy}`,
          "tools/exercise.ts",
          ...args,
        ],
        cwd: copy,
        stdin: "null",
        env: { NO_COLOR: "1" },
      }).output();
      // --progress checks every exercise, so it misses the first one's file first.
      const first = EXERCISES[0];
      const [path, lesson] = args[0] === "--progress"
        ? [`exercises/${first.dir}/${first.file}`, first.lesson]
        : ["exercises/02-echo/server.ts", "02"];
      assertEquals(
        [code, new TextDecoder().decode(stdout), new TextDecoder().decode(stderr)],
        [2, "", `no file ${path}: restore it with deno task exercise ${lesson} --reset\n`],
        args.join(" "),
      );
    }
  } finally {
    Deno.removeSync(copy, { recursive: true });
  }
});
