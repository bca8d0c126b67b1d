/**
 * `deno task exercise NN`: checks a learner's exercise with the lesson's own tests.
 *
 * The learner's file (exercises/NN-slug/FILE) is put in the place of the
 * lesson's file (lessons/NN-slug/FILE) in a scratch copy of the course
 * (.exercise-runs/, deleted afterwards), and the spawned-process checks of
 * tests/lessonNN_test.ts run against that copy: the same programs, tasks,
 * permissions and assertions as `deno test`. The first failing check stops
 * the run and says what was expected, what came, and a hint.
 *
 *     deno task exercise 02            check exercise 02
 *     deno task exercise 02 --watch    check it again on every save
 *     deno task exercises              the progress table (changes no file)
 *     deno task exercise --verify      CI: every exercise fails untouched and
 *                                      passes with its lesson's file copied in
 *
 * @module
 */
import { bold, green, red, yellow } from "./colors.ts";
import { type Check, type Steps, takeChecks } from "../tests/_checks.ts";
import { runProgramsIn, type RunResult, watchPrograms } from "./lesson_process.ts";
import { type Exercise, EXERCISES, findExercise, hintFor } from "./exercise_list.ts";
import { plural } from "../lib/mod.ts";

const ROOT = new URL("../", import.meta.url);
const SCRATCH = new URL(".exercise-runs/", ROOT);
/** What a scratch copy holds: all a lesson program needs (the tasks read deno.json). */
const COURSE = ["deno.json", "deno.lock", "lib", "lessons"];

/** What happened to one exercise's checks. */
export interface Outcome {
  /** Checks (and steps) that passed, in order. */
  passed: string[];
  /** The first failure; none if every check passed. */
  failure?: Failure;
}

interface Failure {
  /** `test name › step name`. */
  check: string;
  error: unknown;
  /** What the programs run during the failing check printed. */
  programs: { task: string; result: RunResult }[];
}

/** The path of an exercise's file, e.g. `exercises/02-echo/server.ts`. */
export const exercisePath = (exercise: Exercise) => `exercises/${exercise.dir}/${exercise.file}`;

// ---------------------------------------------------------------- scratch copies

async function copyTree(from: URL, to: URL): Promise<void> {
  const info = await Deno.stat(from);
  if (info.isFile) return await Deno.copyFile(from, to);
  if (!from.href.endsWith("/")) [from, to] = [new URL(from.href + "/"), new URL(to.href + "/")];
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isSymlink) continue;
    const suffix = entry.isDirectory ? "/" : "";
    await copyTree(new URL(entry.name + suffix, from), new URL(entry.name + suffix, to));
  }
}

/** The scratch copies in use: Ctrl-C deletes them (the `finally` below would not run). */
const copiesInUse = new Set<URL>();

/** On Ctrl-C (or `kill`), deletes the scratch copies in use, then exits. */
function deleteCopiesOnCtrlC(): void {
  // The codes a shell reports for a program stopped by these signals.
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    Deno.addSignalListener(signal, () => {
      for (const copy of copiesInUse) {
        try {
          Deno.removeSync(copy, { recursive: true });
        } catch {
          // gone already
        }
      }
      Deno.exit(code);
    });
  }
}

/**
 * A scratch copy of the course with `source` in the place of the lesson's
 * file; `prepare` may change the copy first (`--verify` copies the lesson's
 * file over the exercise's there). Deleted after `work`.
 */
async function withScratchCopy<T>(
  exercise: Exercise,
  source: (copy: URL) => URL,
  work: (copy: URL) => Promise<T>,
  prepare?: (copy: URL) => Promise<void>,
): Promise<T> {
  await Deno.mkdir(SCRATCH, { recursive: true });
  const copy = new URL(
    `${await Deno.makeTempDir({ dir: SCRATCH.pathname, prefix: exercise.dir + "-" })}/`,
    "file://",
  );
  copiesInUse.add(copy);
  try {
    for (const name of COURSE) await copyTree(new URL(name, ROOT), new URL(name, copy));
    await prepare?.(copy);
    await Deno.copyFile(
      source(copy),
      new URL(`lessons/${exercise.dir}/${exercise.file}`, copy),
    );
    return await work(copy);
  } finally {
    await Deno.remove(copy, { recursive: true }).catch(() => {});
    copiesInUse.delete(copy);
  }
}

// ---------------------------------------------------------------- running checks

const checksByFile = new Map<string, Check[]>();

/** The spawned-process checks of a lesson's test file (imported once). */
async function checksOf(exercise: Exercise): Promise<Check[]> {
  let checks = checksByFile.get(exercise.tests);
  if (!checks) {
    takeChecks();
    await import(new URL(`../tests/${exercise.tests}`, import.meta.url).href);
    checks = takeChecks();
    checksByFile.set(exercise.tests, checks);
  }
  return checks;
}

/** `Deno.TestContext`'s `step` for the runner: after the first failure, steps are skipped. */
class StepRunner implements Steps {
  failure: { step: string; error: unknown } | undefined;
  passed: string[] = [];

  /** @param passedStep told of each step that passes */
  constructor(readonly passedStep: (name: string) => void) {}

  async step(name: string, fn: () => void | Promise<void>): Promise<boolean> {
    if (this.failure) return false;
    try {
      await fn();
      this.passed.push(name);
      this.passedStep(name);
      return true;
    } catch (error) {
      this.failure = { step: name, error };
      return false;
    }
  }
}

/** Rejections nobody handled during a check (a test's background write, say): a failure. */
let stray: unknown[] | undefined;
globalThis.addEventListener("unhandledrejection", (event) => {
  if (stray === undefined) return; // not in a check: a bug of this tool, let it crash
  event.preventDefault();
  stray.push(event.reason);
});

/**
 * Runs the exercise's checks against the course copy `copy`, in order,
 * until one fails. `report` hears of each check as it ends.
 */
async function runChecks(
  exercise: Exercise,
  copy: URL,
  report: (name: string, ok: boolean) => void = () => {},
): Promise<Outcome> {
  const outcome: Outcome = { passed: [] };
  const checks = await checksOf(exercise);
  runProgramsIn(copy);
  try {
    for (const check of checks) {
      const programs: Failure["programs"] = [];
      watchPrograms((task, result) => programs.push({ task, result }));
      const steps = new StepRunner((step) => report(`${check.name} › ${step}`, true));
      stray = [];
      let thrown: { error: unknown } | undefined;
      try {
        await check.fn(steps);
      } catch (error) {
        thrown = { error };
      }
      // Let a rejection from the check's last moments arrive.
      await new Promise((resolve) => setTimeout(resolve, 0));
      const strays = stray;
      stray = undefined;
      watchPrograms();
      for (const step of steps.passed) outcome.passed.push(`${check.name} › ${step}`);
      const failed = steps.failure
        ? { check: `${check.name} › ${steps.failure.step}`, error: steps.failure.error }
        : thrown
        ? { check: check.name, error: thrown.error }
        : strays.length > 0
        ? { check: check.name, error: strays[0] }
        : undefined;
      if (failed) report(failed.check, false);
      else if (steps.passed.length === 0) report(check.name, true);
      if (failed) {
        outcome.failure = { ...failed, programs };
        return outcome;
      }
      if (steps.passed.length === 0) outcome.passed.push(check.name);
    }
    return outcome;
  } finally {
    runProgramsIn();
  }
}

/**
 * `deno check` of the file in the lesson's place: `deno run` does not check
 * types, so a mistake such as a missing option would only show as odd
 * behaviour. Returns the errors, or undefined if it type-checks.
 */
async function typeErrors(exercise: Exercise, copy: URL): Promise<string | undefined> {
  const { code, stderr } = await new Deno.Command("deno", {
    args: ["check", "--quiet", `lessons/${exercise.dir}/${exercise.file}`],
    cwd: copy,
    stdin: "null",
    stdout: "null",
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
  }).output();
  if (code === 0) return undefined;
  return new TextDecoder().decode(stderr).replace(/\nerror: Type checking failed\.[^]*$/, "")
    .replaceAll(copy.href, "").replaceAll(copy.pathname, "")
    .replaceAll(`lessons/${exercise.dir}/${exercise.file}`, exercisePath(exercise));
}

/**
 * Checks the learner's file of `exercise` (never changing it): types first
 * (unless `typeCheck` is false: CI's `deno task check` covers exercises/),
 * then the tests.
 */
export function checkExercise(
  exercise: Exercise,
  report: (name: string, ok: boolean) => void = () => {},
  typeCheck = true,
): Promise<Outcome> {
  return withScratchCopy(
    exercise,
    () => new URL(exercisePath(exercise), ROOT),
    async (copy) => {
      const errors = typeCheck ? await typeErrors(exercise, copy) : undefined;
      if (errors === undefined) return runChecks(exercise, copy, report);
      const check = `deno check ${exercisePath(exercise)}`;
      report(check, false);
      return { passed: [], failure: { check, error: new Error(errors.trim()), programs: [] } };
    },
  );
}

/** Checks `exercise` with the lesson's own file copied over the exercise's, in a scratch copy. */
function checkSolution(exercise: Exercise): Promise<Outcome> {
  const scratchExercise = (copy: URL) => new URL(exercisePath(exercise), copy);
  return withScratchCopy(
    exercise,
    scratchExercise,
    (copy) => runChecks(exercise, copy),
    async (copy) => {
      await copyTree(
        new URL(`exercises/${exercise.dir}/`, ROOT),
        new URL(`exercises/${exercise.dir}/`, copy),
      );
      await Deno.copyFile(
        new URL(`lessons/${exercise.dir}/${exercise.file}`, ROOT),
        scratchExercise(copy),
      );
    },
  );
}

// ---------------------------------------------------------------- what the learner sees

// deno-lint-ignore no-control-regex
const stripColors = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");
const indent = (text: string, by = "    ") =>
  text.trimEnd().split("\n").map((line) => by + line).join("\n");

/** The line of the test file where the failed assertion is, with its code. */
function assertionSite(error: unknown, exercise: Exercise): string | undefined {
  if (!(error instanceof Error) || !error.stack) return undefined;
  const at = error.stack.match(new RegExp(`tests/${exercise.tests}:(\\d+):\\d+`));
  if (!at) return undefined;
  const source = Deno.readTextFileSync(new URL(`tests/${exercise.tests}`, ROOT)).split("\n");
  return `tests/${exercise.tests}:${at[1]}: ${source[Number(at[1]) - 1]?.trim()}`;
}

/** Expected and came, from an assertion's message (std's diff: `-` came, `+` expected). */
function expectedAndCame(error: unknown): string {
  const message = stripColors(error instanceof Error ? error.message : String(error));
  const diff = message.indexOf("[Diff] Actual / Expected");
  if (diff === -1) return indent(message || "(the condition was false)");
  const lead = message.slice(0, diff).replace(/Values are not equal\.?\s*$/, "").trim();
  const lines = message.slice(diff + "[Diff] Actual / Expected".length)
    .split("\n").filter((line) => line.trim() !== "");
  return [
    ...(lead ? [indent(lead)] : []),
    `    (lines with - are what came, lines with + what was expected)`,
    ...lines.map((line) =>
      line.startsWith("-") ? red(line) : line.startsWith("+") ? green(line) : line
    ).map((line) => "  " + line),
  ].join("\n");
}

/** Prints the failure: which check, expected and came, the programs' output, the hint. */
function explain(exercise: Exercise, failure: Failure): void {
  console.log(`\n${bold("The check that failed:")} ${failure.check}`);
  const site = assertionSite(failure.error, exercise);
  if (site) console.log(`  ${site}`);
  console.log(bold("What was expected, and what came:"));
  console.log(expectedAndCame(failure.error));
  for (const { task, result } of failure.programs) {
    if (!task.startsWith(`lesson${exercise.lesson}-`) || result.stderr.trim() === "") continue;
    const lines = result.stderr.trimEnd().split("\n");
    console.log(bold(`${task} printed on stderr:`));
    console.log(indent(lines.slice(-12).join("\n")));
  }
  const hint = failure.check.startsWith("deno check ")
    ? "Your file does not type-check: fix these first (`deno run` would not say, the program " +
      "would just misbehave). The names the lesson uses are imported at the top."
    : hintFor(exercise, failure.check);
  console.log(`${bold(yellow("Hint:"))} ${hint}`);
}

/** The one line to print if the exercise's file is gone (deleted, renamed); else undefined. */
function missingFile(exercise: Exercise): string | undefined {
  try {
    Deno.statSync(new URL(exercisePath(exercise), ROOT));
    return undefined;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const path = exercisePath(exercise);
    return `no file ${path}: restore it with git checkout -- ${path}`;
  }
}

/** Checks one exercise, printing each check; true if it passed. */
async function runOne(exercise: Exercise): Promise<boolean> {
  const missing = missingFile(exercise); // deleted while --watch waited, say
  if (missing) {
    console.error(missing);
    return false;
  }
  console.log(bold(`Exercise ${exercise.lesson}: ${exercise.task}`));
  console.log(
    `${exercisePath(exercise)} in the place of lessons/${exercise.dir}/${exercise.file}, ` +
      `checked by tests/${exercise.tests}`,
  );
  const outcome = await checkExercise(exercise, (name, ok) => {
    console.log(ok ? `  ${green("ok")}    ${name}` : `  ${red("FAIL")}  ${name}`);
  });
  if (outcome.failure) {
    explain(exercise, outcome.failure);
    return false;
  }
  console.log(
    green(bold(`\nExercise ${exercise.lesson} passes: every check of lesson ${exercise.lesson}.`)),
  );
  const next = EXERCISES[EXERCISES.indexOf(exercise) + 1];
  if (next) console.log(`Next: deno task exercise ${next.lesson} (${next.task})`);
  return true;
}

/** Checks again on every save of the exercise's folder, until Ctrl-C. */
async function watch(exercise: Exercise): Promise<never> {
  const folder = new URL(`exercises/${exercise.dir}/`, ROOT);
  const watcher = Deno.watchFs(folder.pathname);
  let changed = true;
  let wake: (() => void) | undefined;
  (async () => {
    for await (const event of watcher) {
      if (event.kind === "access") continue;
      changed = true;
      wake?.();
    }
  })();
  while (true) {
    if (changed) {
      changed = false;
      console.log(bold(`\n── ${new Date().toLocaleTimeString()} ──`));
      await runOne(exercise);
      console.log(`\nwatching exercises/${exercise.dir}/: save to check again (Ctrl-C to stop)`);
    }
    // A save made during the check has set `changed` already: check again at once.
    if (!changed) await new Promise<void>((resolve) => wake = resolve);
    await new Promise((resolve) => setTimeout(resolve, 200)); // an editor's save is several events
  }
}

/** One row of the progress table. */
export function progressRow(exercise: Exercise, outcome: Outcome): string {
  const state = outcome.failure
    ? `not yet (${plural(outcome.passed.length, "check")} passed, then: ${outcome.failure.check})`
    : `passed (${plural(outcome.passed.length, "check")})`;
  return `${exercise.lesson}  ${exercise.task.padEnd(64)}  ${state}`;
}

/** The progress table's last line: the first exercise that does not pass yet. */
export function nextLine(outcomes: Outcome[]): string {
  const index = outcomes.findIndex((outcome) => outcome.failure !== undefined);
  if (index === -1) return `All ${outcomes.length} exercises pass.`;
  const next = EXERCISES[index];
  return `${outcomes.filter((o) => !o.failure).length} of ${outcomes.length} exercises pass. ` +
    `Next: deno task exercise ${next.lesson} (${exercisePath(next)})`;
}

async function progress(): Promise<void> {
  console.log(bold(`#   ${"what you write".padEnd(64)}  state`));
  const outcomes: Outcome[] = [];
  for (const exercise of EXERCISES) {
    const outcome = await checkExercise(exercise);
    outcomes.push(outcome);
    console.log(progressRow(exercise, outcome));
  }
  console.log(nextLine(outcomes));
}

/**
 * True if the failure is that a program could not start at all (its module
 * did not load): an untouched exercise must fail its checks, not that.
 */
function couldNotRun(failure: Failure): boolean {
  const message = failure.error instanceof Error ? failure.error.message : String(failure.error);
  return /did not print "listening on"/.test(message) ||
    failure.programs.some(({ result }) =>
      /^error: (Module not found|Uncaught SyntaxError|The module's source code)/m.test(
        result.stderr,
      )
    );
}

/**
 * CI: every exercise fails untouched (its checks fail, it does run) and
 * passes with its lesson's file copied in. Exit 1 otherwise.
 */
async function verify(exercises: Exercise[]): Promise<boolean> {
  let ok = true;
  const untouched: Outcome[] = [];
  const solved: Outcome[] = [];
  for (const exercise of exercises) {
    const started = performance.now();
    const before = await checkExercise(exercise, undefined, false);
    const after = await checkSolution(exercise);
    untouched.push(before);
    solved.push(after);
    const failsRight = before.failure !== undefined && !couldNotRun(before.failure);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `exercise ${exercise.lesson}: untouched ${
        failsRight ? "fails" : before.failure ? "FAILS BUT DID NOT RUN" : "DOES NOT FAIL"
      } (${before.failure?.check ?? "every check passed"}); ` +
        `with lessons/${exercise.dir}/${exercise.file}: ${
          after.failure
            ? `FAILS (${after.failure.check})`
            : `passes ${plural(after.passed.length, "check")}`
        } [${seconds} s]`,
    );
    if (!failsRight && before.failure) explain(exercise, before.failure);
    if (after.failure) explain(exercise, after.failure);
    ok &&= failsRight && after.failure === undefined;
  }
  // The progress table a learner would see, before and after.
  for (const [when, outcomes] of [["untouched", untouched], ["solved", solved]] as const) {
    console.log(`progress, ${when}:`);
    exercises.forEach((exercise, i) => console.log(progressRow(exercise, outcomes[i])));
    if (exercises.length === EXERCISES.length) console.log(nextLine(outcomes));
  }
  return ok;
}

function usage(): string {
  return [
    "usage: deno task exercise NN [--watch]   check exercise NN with lesson NN's tests",
    "       deno task exercises               the progress table",
    "       deno task exercise --verify [NN]  every exercise fails untouched, passes solved",
    "",
    "exercises:",
    ...EXERCISES.map((e) => `  ${e.lesson}  ${exercisePath(e).padEnd(40)} ${e.task}`),
  ].join("\n");
}

if (import.meta.main) {
  deleteCopiesOnCtrlC();
  const args = Deno.args.filter((arg) => arg !== "--");
  const fail = (message: string): never => {
    console.error(message);
    Deno.exit(2);
  };
  const exercisesOf = (names: string[]) =>
    names.map((name) => findExercise(name) ?? fail(`no exercise ${name}: see --help`));
  /** Fails with one line if an exercise's file is gone. */
  const requireFiles = (exercises: Exercise[]) => {
    for (const exercise of exercises) {
      const missing = missingFile(exercise);
      if (missing) fail(missing);
    }
  };
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage());
  } else if (args[0] === "--progress" && args.length === 1) {
    requireFiles(EXERCISES);
    await progress();
  } else if (args[0] === "--verify") {
    const chosen = args.length > 1 ? exercisesOf(args.slice(1)) : EXERCISES;
    requireFiles(chosen);
    Deno.exit((await verify(chosen)) ? 0 : 1);
  } else {
    const names = args.filter((arg) => arg !== "--watch");
    const unknown = names.find((arg) => arg.startsWith("-"));
    if (unknown) fail(`unknown option ${unknown}: see --help`);
    if (names.length !== 1) fail(usage());
    const [exercise] = exercisesOf(names);
    requireFiles([exercise]);
    if (args.includes("--watch")) await watch(exercise);
    Deno.exit((await runOne(exercise)) ? 0 : 1);
  }
}
