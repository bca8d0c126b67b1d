/**
 * A lesson's spawned-process tests, written once and run two ways: by
 * `deno test` against the lesson's programs, and by `deno task exercise NN`
 * (tools/exercise.ts) against a learner's exercise file. A test file calls
 * {@linkcode test} instead of `Deno.test` for these; nothing else changes.
 *
 * @module
 */

/** What a check's body may use of `Deno.TestContext`: steps (the exercise runner has its own). */
export interface Steps {
  /** Runs one step; resolves false if it failed (it never throws). */
  step(name: string, fn: () => void | Promise<void>): Promise<boolean>;
}

/** One named spawned-process test. */
export interface Check {
  name: string;
  fn: (t: Steps) => void | Promise<void>;
}

const registered: Check[] = [];

/**
 * `Deno.test(name, fn)` that the exercise runner can run too. Outside
 * `deno test` (under `deno run`), Deno.test does nothing: the check is only
 * recorded, for {@linkcode takeChecks}. `options.ignore` skips it under
 * `deno test` only (e.g. redis-server is not installed): the exercise runner
 * still runs it, and the learner sees why it fails.
 */
export function test(
  name: string,
  fn: (t: Steps) => void | Promise<void>,
  options: { ignore?: boolean } = {},
): void {
  registered.push({ name, fn });
  Deno.test({ name, fn, ignore: options.ignore ?? false });
}

/** The checks recorded since the last call (import a test file, then take its checks). */
export function takeChecks(): Check[] {
  return registered.splice(0);
}
