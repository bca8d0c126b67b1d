/**
 * `deno task exercise NN`: checks a learner's exercise with the lesson's own tests.
 *
 * The learner's file (exercises/NN-slug/FILE) is put in the place of the
 * lesson's file (lessons/NN-slug/FILE) in a scratch copy of the course
 * (.exercise-runs/, deleted afterwards), and the checks of the lesson's test
 * files (tests/lessonNN_test.ts and the like) run against that copy: the
 * same programs, tasks, permissions and assertions as `deno test`. The first
 * failing check stops the run and says what was expected, what came, and a
 * hint.
 *
 *     deno task exercise 02            check exercise 02
 *     deno task exercise 02 --watch    check it again on every save
 *     deno task exercise 02 --hint     the next hint (which were shown: .exercise-state.json)
 *     deno task exercise 02 --reset    put the file back as shipped (asks; --yes does not)
 *     deno task exercises              the progress table (changes no file)
 *     deno task exercises --verify     every exercise in order, up to the first that fails
 *     deno task exercise --self-check  CI: every exercise fails untouched and
 *                                      passes with its lesson's file copied in
 *     deno task exercise 02 --only T   only the checks whose name holds T
 *     deno task exercise 02 --file F   check file F in the exercise's place (the
 *                                      course's own tests try known bugs this way)
 *
 * @module
 */
import { bold, green, red, yellow } from "./colors.ts";
import { type Check, type Steps, takeChecks } from "../tests/_checks.ts";
import { runProgramsIn, type RunResult, watchPrograms } from "./lesson_process.ts";
import { type Exercise, EXERCISES, findExercise, hintFor, hintsOf } from "./exercise_list.ts";
import { plural, terminalSafe } from "../lib/mod.ts";

const ROOT = new URL("../", import.meta.url);
const SCRATCH = new URL(".exercise-runs/", ROOT);
/** Which hints each exercise has shown (`--hint`), kept between runs; gitignored. */
const STATE = new URL(".exercise-state.json", ROOT);
/** The exercises as shipped, for `--reset` (works without git, from a zip too). */
const SHIPPED = new URL("tools/exercises_shipped/", ROOT);
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
      copiesInUse.clear();
      removeScratchIfEmpty();
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
  const copy = await makeCopyDir(exercise);
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
    removeScratchIfEmpty();
  }
}

/** A new directory under .exercise-runs/ (another run may remove an empty .exercise-runs/ meanwhile). */
async function makeCopyDir(exercise: Exercise): Promise<URL> {
  for (let attempt = 1;; attempt++) {
    await Deno.mkdir(SCRATCH, { recursive: true });
    try {
      const dir = await Deno.makeTempDir({ dir: SCRATCH.pathname, prefix: exercise.dir + "-" });
      return new URL(`${dir}/`, "file://");
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || attempt === 5) throw error;
    }
  }
}

/**
 * Removes .exercise-runs/ once no copy is left in it (nothing stays behind
 * after a run). Another run's copy in it keeps it: that run removes it.
 */
function removeScratchIfEmpty(): void {
  if (copiesInUse.size > 0) return;
  try {
    Deno.removeSync(SCRATCH); // not recursive: fails if another run's copy is there
  } catch {
    // not empty, or gone already
  }
}

// ---------------------------------------------------------------- running checks

const checksByFile = new Map<string, Check[]>();

/** The checks of an exercise's test files, in order (each file imported once). */
async function checksOf(exercise: Exercise): Promise<Check[]> {
  const all: Check[] = [];
  for (const file of exercise.tests) {
    let checks = checksByFile.get(file);
    if (!checks) {
      takeChecks();
      await import(new URL(`../tests/${file}`, import.meta.url).href);
      checks = takeChecks();
      checksByFile.set(file, checks);
    }
    all.push(...checks);
  }
  return all;
}

/** `Deno.TestContext`'s `step` for the runner: after the first failure, steps are skipped. */
class StepRunner implements Steps {
  failure: { step: string; error: unknown } | undefined;
  passed: string[] = [];

  /**
   * @param passedStep told of each step that passes
   * @param only if given, only the steps whose names hold it (lowercase) run
   */
  constructor(readonly passedStep: (name: string) => void, readonly only?: string) {}

  async step(name: string, fn: () => void | Promise<void>): Promise<boolean> {
    if (this.failure) return false;
    if (this.only !== undefined && !name.toLowerCase().includes(this.only)) return true;
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

/**
 * While a check runs, says every few seconds that it still runs (a check
 * of many clients can take 20 s, and silence looks like a hang).
 */
class Ticker {
  #started = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(readonly name: string, readonly progress?: (line: string) => void) {
    this.reset();
  }

  /** Something was printed: the next note is due a full period from now. */
  reset(): void {
    if (!this.progress) return;
    clearInterval(this.#timer);
    const timer = setInterval(() => {
      const seconds = Math.round((performance.now() - this.#started) / 1000);
      this.progress?.(`  ...   ${this.name} (running, ${seconds} s so far)`);
    }, TICK_MS);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** How often a long check says it is still running. */
const TICK_MS = 3_000;

/** `--only TEXT`: run only the checks whose name holds TEXT (any case). */
let onlyChecks: string | undefined;

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
  progress?: (line: string) => void,
): Promise<Outcome> {
  const only = onlyChecks?.toLowerCase();
  const outcome: Outcome = { passed: [] };
  // --only: a check whose name holds the text runs whole; one whose code holds
  // it (a step's name) runs only the steps whose names hold it.
  const checks = (await checksOf(exercise)).filter((check) =>
    only === undefined || check.name.toLowerCase().includes(only) ||
    check.fn.toString().toLowerCase().includes(only)
  );
  if (checks.length === 0) {
    const error = new Error(
      `no check of exercise ${exercise.lesson} has "${onlyChecks}" in its name`,
    );
    return { passed: [], failure: { check: `--only ${onlyChecks}`, error, programs: [] } };
  }
  runProgramsIn(copy);
  try {
    for (const check of checks) {
      const programs: Failure["programs"] = [];
      watchPrograms((task, result) => programs.push({ task, result }));
      const steps = new StepRunner((step) => {
        ticker.reset();
        report(`${check.name} › ${step}`, true);
      }, only === undefined || check.name.toLowerCase().includes(only) ? undefined : only);
      stray = [];
      let thrown: { error: unknown } | undefined;
      const ticker = new Ticker(check.name, progress);
      try {
        await check.fn(steps);
      } catch (error) {
        thrown = { error };
      } finally {
        ticker.stop();
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
  progress?: (line: string) => void,
  file = new URL(exercisePath(exercise), ROOT),
): Promise<Outcome> {
  return withScratchCopy(
    exercise,
    () => file,
    async (copy) => {
      const errors = typeCheck ? await typeErrors(exercise, copy) : undefined;
      if (errors === undefined) return runChecks(exercise, copy, report, progress);
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

/** The most lines of a diff shown: the first difference and what follows it. */
const MAX_DIFF_LINES = 40;

// deno-lint-ignore no-control-regex
const stripColors = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");
/** Each line through terminalSafe: the peer's text (in an assertion, on stderr) is never shown raw. */
const safe = (text: string) => text.split("\n").map(terminalSafe).join("\n");
const indent = (text: string, by = "    ") =>
  safe(text.trimEnd()).split("\n").map((line) => by + line).join("\n");

/** The line of the test file where the failed assertion is, with its code. */
function assertionSite(error: unknown, exercise: Exercise): string | undefined {
  if (!(error instanceof Error) || !error.stack) return undefined;
  for (const file of exercise.tests) {
    const at = error.stack.match(new RegExp(`tests/${file.replaceAll(".", "\\.")}:(\\d+):\\d+`));
    if (!at) continue;
    const source = Deno.readTextFileSync(new URL(`tests/${file}`, ROOT)).split("\n");
    return `tests/${file}:${at[1]}: ${source[Number(at[1]) - 1]?.trim()}`;
  }
  return undefined;
}

/**
 * Expected and came, from an assertion's message (std's diff: `-` came, `+`
 * expected). A long diff (two big arrays, say) is cut to the lines around
 * its first difference.
 */
export function expectedAndCame(error: unknown): string {
  const message = stripColors(error instanceof Error ? error.message : String(error));
  const diff = message.indexOf("[Diff] Actual / Expected");
  if (diff === -1) return indent(message || "(the condition was false)");
  const lead = message.slice(0, diff).replace(/Values are not equal\.?\s*$/, "").trim();
  let lines = message.slice(diff + "[Diff] Actual / Expected".length)
    .split("\n").filter((line) => line.trim() !== "");
  if (lines.length > MAX_DIFF_LINES) {
    const first = Math.max(0, lines.findIndex((line) => /^[-+]/.test(line)));
    const from = Math.max(0, first - 5);
    const to = Math.min(lines.length, from + MAX_DIFF_LINES);
    lines = [
      ...(from > 0 ? [`    ... (${plural(from, "line")} the same on both sides)`] : []),
      ...lines.slice(from, to),
      ...(to < lines.length ? [`    ... (${plural(lines.length - to, "more line")})`] : []),
    ];
  }
  return [
    ...(lead ? [indent(lead)] : []),
    `    (lines with - are what came, lines with + what was expected)`,
    ...lines.map(terminalSafe).map((line) =>
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
    return `no file ${path}: restore it with deno task exercise ${exercise.lesson} --reset`;
  }
}

/** Checks one exercise, printing each check; true if it passed. */
async function runOne(exercise: Exercise, file?: URL): Promise<boolean> {
  const missing = file ? undefined : missingFile(exercise); // deleted while --watch waited, say
  if (missing) {
    console.error(missing);
    return false;
  }
  console.log(bold(`Exercise ${exercise.lesson}: ${exercise.task}`));
  const shown = file ? file.pathname.replace(ROOT.pathname, "") : exercisePath(exercise);
  console.log(
    `${shown} in the place of lessons/${exercise.dir}/${exercise.file}, ` +
      `checked by ${exercise.tests.map((name) => `tests/${name}`).join(" and ")}`,
  );
  const outcome = await checkExercise(
    exercise,
    (name, ok) => console.log(ok ? `  ${green("ok")}    ${name}` : `  ${red("FAIL")}  ${name}`),
    true,
    console.log,
    file,
  );
  if (outcome.failure) {
    explain(exercise, outcome.failure);
    console.log(`More help: deno task exercise ${exercise.lesson} --hint`);
    return false;
  }
  if (onlyChecks !== undefined) {
    console.log(
      green(bold(`\nExercise ${exercise.lesson} passes the checks chosen with --only.`)) +
        ` Run it without --only for all of them.`,
    );
    return true;
  }
  console.log(
    green(bold(`\nExercise ${exercise.lesson} passes: every check of lesson ${exercise.lesson}.`)),
  );
  console.log(`You just proved that ${exercise.proved}`);
  const next = EXERCISES[EXERCISES.indexOf(exercise) + 1];
  if (next) console.log(`Next: deno task exercise ${next.lesson} (${next.task})`);
  return true;
}

// ---------------------------------------------------------------- hints, reset, verify

/** `.exercise-state.json`: how many hints each exercise has shown. */
function readState(): { hintsShown: Record<string, number> } {
  try {
    const state = JSON.parse(Deno.readTextFileSync(STATE));
    if (typeof state?.hintsShown === "object" && state.hintsShown !== null) return state;
  } catch {
    // no state yet, or not ours: start afresh
  }
  return { hintsShown: {} };
}

/** Prints the exercise's next hint (the first again after the last). */
function showHint(exercise: Exercise): void {
  const state = readState();
  const hints = hintsOf(exercise);
  const shown = state.hintsShown[exercise.lesson] ?? 0;
  if (shown >= hints.length) {
    console.log(
      `No more hints for exercise ${exercise.lesson}: the answer is ` +
        `lessons/${exercise.dir}/${exercise.file}. (--hint again starts from the first.)`,
    );
    state.hintsShown[exercise.lesson] = 0;
  } else {
    console.log(`${bold(yellow(`Hint ${shown + 1} of ${hints.length}:`))} ${hints[shown]}`);
    state.hintsShown[exercise.lesson] = shown + 1;
    if (shown + 1 < hints.length) {
      console.log(`(deno task exercise ${exercise.lesson} --hint again for the next one)`);
    }
  }
  Deno.writeTextFileSync(STATE, JSON.stringify(state, null, 2) + "\n");
}

/** Reads one line from a terminal's stdin (for the y/N question). */
async function ask(question: string): Promise<string> {
  await Deno.stdout.write(new TextEncoder().encode(question));
  const buffer = new Uint8Array(256);
  const n = await Deno.stdin.read(buffer);
  return n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n)).trim();
}

/**
 * Puts the exercise's file back as shipped (tools/exercises_shipped/), after
 * a y/N question on a terminal, or at once with `yes`. Returns the exit code.
 */
async function reset(exercise: Exercise, yes: boolean): Promise<number> {
  const path = exercisePath(exercise);
  const shipped = Deno.readTextFileSync(new URL(`${exercise.dir}/${exercise.file}.orig`, SHIPPED));
  let current: string | undefined;
  try {
    current = Deno.readTextFileSync(new URL(path, ROOT));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (current === shipped) {
    console.log(`${path} is already as shipped: nothing to do.`);
    return 0;
  }
  if (!yes) {
    if (!Deno.stdin.isTerminal()) {
      console.error(`--reset replaces ${path}: add --yes to do it without being asked`);
      return 2;
    }
    const answer = await ask(
      `Put ${path} back as shipped? Your changes to it will be lost. [y/N] `,
    );
    if (!/^y(es)?$/i.test(answer)) {
      console.log(`Nothing changed.`);
      return 1;
    }
  }
  Deno.writeTextFileSync(new URL(path, ROOT), shipped);
  console.log(`${path} is back as shipped: its TODO(exercise) is yours to write again.`);
  return 0;
}

/**
 * `deno task exercises --verify`: checks every exercise in order, and stops
 * at the first that does not pass, showing why and what to do next.
 */
async function verifyInOrder(): Promise<boolean> {
  for (const [i, exercise] of EXERCISES.entries()) {
    const missing = missingFile(exercise);
    if (missing) {
      console.log(`${exercise.lesson}  ${missing}`);
      return false;
    }
    const outcome = await checkExercise(exercise, undefined, true, (line) => {
      console.log(`${exercise.lesson}${line.slice(2)}`);
    });
    if (!outcome.failure) {
      console.log(`${exercise.lesson}  ${green("passes")}: ${exercise.proved}`);
      continue;
    }
    console.log(`${exercise.lesson}  ${red("does not pass yet")}: ${exercise.task}`);
    explain(exercise, outcome.failure);
    console.log(
      bold(`\n${i} of ${EXERCISES.length} exercises pass; exercise ${exercise.lesson} is next.`) +
        `\nNext step: write the TODO(exercise) part of ${exercisePath(exercise)}, then run ` +
        `deno task exercise ${exercise.lesson} --watch (and --hint if you are stuck).`,
    );
    return false;
  }
  console.log(green(bold(`All ${EXERCISES.length} exercises pass.`)));
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
 * CI (`--self-check`): every exercise fails untouched (its checks fail, it does run) and
 * passes with its lesson's file copied in. Exit 1 otherwise.
 */
async function selfCheck(exercises: Exercise[]): Promise<boolean> {
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
    "       deno task exercise NN --hint      the next hint, one at a time",
    "       deno task exercise NN --reset     put exercise NN's file back as shipped (--yes: no question)",
    "       deno task exercises               the progress table",
    "       deno task exercises --verify      every exercise in order, up to the first that fails",
    "       deno task exercise --self-check [NN]  CI: every exercise fails untouched, passes solved",
    "       deno task exercise NN --only TEXT     run only the checks (or steps) whose name holds TEXT",
    "       deno task exercise NN --file PATH     check PATH in the place of exercise NN's file",
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
  const flag = (name: string) => args.includes(name);
  if (flag("--help") || flag("-h")) {
    console.log(usage());
  } else if (args[0] === "--progress" && args.length === 1) {
    requireFiles(EXERCISES);
    await progress();
  } else if (args[0] === "--progress" && args[1] === "--verify" && args.length === 2) {
    Deno.exit((await verifyInOrder()) ? 0 : 1);
  } else if (args[0] === "--self-check") {
    const chosen = args.length > 1 ? exercisesOf(args.slice(1)) : EXERCISES;
    requireFiles(chosen);
    Deno.exit((await selfCheck(chosen)) ? 0 : 1);
  } else {
    const valueOf = (option: string) => {
      const at = args.indexOf(option);
      return at === -1 ? undefined : args[at + 1] ?? fail(`${option} needs a value`);
    };
    const file = valueOf("--file");
    onlyChecks = valueOf("--only");
    const values = ["--file", "--only"].map((o) => args.indexOf(o) + 1).filter((i) => i > 0);
    const names = args.filter((arg, i) => !arg.startsWith("-") && !values.includes(i));
    const options = args.filter((arg, i) => arg.startsWith("-") && !values.includes(i));
    const known = ["--watch", "--hint", "--reset", "--yes", "--file", "--only"];
    const unknown = options.find((arg) => !known.includes(arg));
    if (unknown) fail(`unknown option ${unknown}: see --help`);
    if (names.length !== 1) fail(usage());
    const [exercise] = exercisesOf(names);
    const modes = ["--watch", "--hint", "--reset", "--file"].filter(flag);
    if (modes.length > 1) fail(`${modes.join(" and ")} do not go together: see --help`);
    if (flag("--yes") && !flag("--reset")) fail("--yes goes with --reset: see --help");
    if (flag("--hint")) {
      showHint(exercise);
      Deno.exit(0);
    }
    if (flag("--reset")) Deno.exit(await reset(exercise, flag("--yes")));
    if (file !== undefined) {
      Deno.exit((await runOne(exercise, new URL(file, `file://${Deno.cwd()}/`))) ? 0 : 1);
    }
    requireFiles([exercise]);
    if (flag("--watch")) await watch(exercise);
    Deno.exit((await runOne(exercise)) ? 0 : 1);
  }
}
