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
 * recorded, for {@linkcode takeChecks}.
 */
export function test(name: string, fn: (t: Steps) => void | Promise<void>): void {
  registered.push({ name, fn });
  Deno.test(name, fn);
}

/** The checks recorded since the last call (import a test file, then take its checks). */
export function takeChecks(): Check[] {
  return registered.splice(0);
}
