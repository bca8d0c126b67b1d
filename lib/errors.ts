/**
 * Errors a learner should see as one clear line, never as a stack trace.
 *
 * Network programs fail in ordinary ways: nobody is listening, the peer hung
 * up, the port is taken. Those are not bugs, so the lessons turn them into a
 * {@linkcode LessonError} that says what happened and what to do, and
 * {@linkcode runMain} prints that line and exits. Anything else is a bug in
 * the lesson and keeps its stack trace.
 *
 * @module
 */

/**
 * An expected failure with a message meant for a person. {@linkcode runMain}
 * prints just the message and exits with `exitCode`.
 *
 * @example
 * ```ts
 * import { LessonError } from "./errors.ts";
 * const error = new LessonError("the server sent more than 1 MiB: giving up");
 * error.exitCode; // 1: `throw error` inside runMain prints the message and exits 1
 * ```
 */
export class LessonError extends Error {
  /** The process exit code to use: 1 for failures, 2 for usage errors. */
  exitCode: number;

  /**
   * Creates an expected failure.
   *
   * @param message one line, for a person
   * @param exitCode the exit code (default 1)
   */
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "LessonError";
    this.exitCode = exitCode;
  }
}

/**
 * A bad command line: an unknown flag or a value out of range. Exit code 2,
 * the usual code for "you called me wrong".
 *
 * @example
 * ```ts
 * import { UsageError } from "./errors.ts";
 * const error = new UsageError("--port must be a whole number from 0 to 65535, got \"abc\"");
 * error.exitCode; // 2
 * ```
 */
export class UsageError extends LessonError {
  /**
   * Creates a usage error (exit code 2).
   *
   * @param message what was wrong with the arguments
   */
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/** Thrown when a wait on the network took longer than its time limit. */
export class TimeoutError extends LessonError {
  /**
   * Creates a timeout error.
   *
   * @param message what we were waiting for, and how long
   */
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/**
 * Explains a socket error in a few plain words, for errors that happen on a
 * connection that already exists (reset, broken pipe, ...). Returns `undefined`
 * for errors that are not network conditions (those are bugs).
 *
 * @example
 * ```ts
 * import { describeNetError } from "./errors.ts";
 * describeNetError(new Deno.errors.ConnectionReset("os error 104"));
 * // "connection reset by peer (the other side closed abruptly)"
 * ```
 */
export function describeNetError(error: unknown): string | undefined {
  if (error instanceof LessonError) return error.message;
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (error instanceof Deno.errors.ConnectionReset) {
    return "connection reset by peer (the other side closed abruptly)";
  }
  if (error instanceof Deno.errors.ConnectionAborted) return "connection aborted";
  if (error instanceof Deno.errors.BrokenPipe) {
    return "broken pipe (the other side closed before we finished writing)";
  }
  if (error instanceof Deno.errors.TimedOut) return "timed out";
  if (error instanceof Deno.errors.NotConnected) return "not connected";
  if (error instanceof Deno.errors.UnexpectedEof) return "the other side closed unexpectedly";
  if (error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BadResource) {
    return "the connection was closed";
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `not permitted: ${error.message.replace(/, run again.*$/, "")}` +
      ": the task's --allow-net list does not include it";
  }
  // EMFILE/ENFILE: a new socket (a connect, an accept) found no descriptor
  // free. A condition of the moment, not a bug: that one connection fails.
  if (error instanceof Error && /\(os error (24|23)\)$/.test(error.message)) {
    return "out of file descriptors (too many open files: see ulimit -n)";
  }
  return undefined;
}

/**
 * Runs a lesson's `main` function. A {@linkcode LessonError} (or a known
 * network error) is printed as one line on stderr and the process exits with
 * its exit code; any other error is a bug and is rethrown with its stack trace.
 *
 * @example
 * ```ts
 * import { runMain } from "./errors.ts";
 * await runMain(async () => {
 *   // the lesson's code
 * });
 * ```
 */
export async function runMain(main: () => Promise<void> | void): Promise<void> {
  try {
    await main();
  } catch (error) {
    const text = describeNetError(error);
    if (text === undefined) throw error;
    console.error(text);
    Deno.exit(error instanceof LessonError ? error.exitCode : 1);
  }
}
