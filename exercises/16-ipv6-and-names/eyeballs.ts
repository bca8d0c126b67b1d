// deno-lint-ignore-file no-unused-vars -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 16: racing the connection attempts (Happy Eyeballs) is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 16`:
 * lesson 16's own tests check your file in the lesson's place.
 *
 * Happy Eyeballs (RFC 8305): connect to a name that has several addresses
 * without waiting for a broken one.
 *
 * A name often has an IPv6 and an IPv4 address. Trying them one after the
 * other is correct but can be slow: if IPv6 packets vanish somewhere, the
 * first attempt hangs until the system gives up (a minute or more) before
 * IPv4 gets its turn. Happy Eyeballs starts with the first address and, if
 * it has not connected within 250 ms (the "connection attempt delay"),
 * starts the next one as well, while the first keeps trying. A failure
 * starts the next address at once. The first connection to succeed wins;
 * the others are cancelled, or closed if they connect too late.
 */
import { describeNetError, formatAddr, LessonError, taskName } from "../../lib/mod.ts";
import { describeEndpoint } from "./family.ts";

/**
 * Orders addresses as RFC 8305 section 4 asks: alternate the families,
 * starting with the family of the resolver's first choice
 * (`[v6a, v6b, v4a]` becomes `[v6a, v4a, v6b]`).
 */
export function interleave(addresses: string[]): string[] {
  const first = addresses.filter((a) => a.includes(":") === addresses[0].includes(":"));
  const other = addresses.filter((a) => a.includes(":") !== addresses[0].includes(":"));
  const out: string[] = [];
  for (let i = 0; i < Math.max(first.length, other.length); i++) {
    if (i < first.length) out.push(first[i]);
    if (i < other.length) out.push(other[i]);
  }
  return out;
}

/** How {@linkcode happyEyeballs} connects and reports. */
export interface EyeballsOptions {
  /** Start the next address after this long without an answer (RFC 8305: 250 ms). */
  attemptDelayMs: number;
  /** Give up on all of them after this long. */
  timeoutMs: number;
  /** Where a line per attempt goes. */
  log: (line: string) => void;
  /** The name we are connecting to, for the error message. */
  name: string;
  /** The lesson number, for the "start it with" hint. */
  lesson: number;
}

/**
 * Connects to the first of `addresses` (in this order) that answers, racing
 * them as described above. Throws a one-line {@linkcode LessonError} if none
 * connects in time.
 */
export function happyEyeballs(
  addresses: string[],
  port: number,
  options: EyeballsOptions,
): Promise<Deno.TcpConn> {
  const cancel = new AbortController(); // stops the attempts still running once one wins
  const failures: string[] = [];
  let next = 0;
  let running = 0;
  let done = false;
  let delayTimer: ReturnType<typeof setTimeout> | undefined;

  return new Promise((resolve, reject) => {
    const finish = (result: Deno.TcpConn | Error) => {
      done = true;
      clearTimeout(delayTimer);
      clearTimeout(deadline);
      cancel.abort();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const deadline = setTimeout(() => {
      options.log(`no connection after ${options.timeoutMs / 1000} s: giving up`);
      finish(
        new LessonError(
          `could not connect to ${options.name} port ${port}: no answer after ` +
            `${options.timeoutMs / 1000} s from ${addresses.join(", ")}`,
        ),
      );
    }, options.timeoutMs);

    const startNext = () => {
      clearTimeout(delayTimer);
      if (done || next >= addresses.length) return;
      const address = addresses[next++];
      running++;
      options.log(`trying ${describeEndpoint(address, port)}`);
      // TODO(exercise): start the attempt (Deno.connect, with cancel.signal so that the
      // winner can abort it) without awaiting it; a Happy Eyeballs client never waits
      // for one address before it tries the next. When it settles, running-- and:
      // - it connected: if an attempt already won (done), close this late one; else
      //   finish(conn) (the winner).
      // - it failed (unless done): push `${formatAddr({ transport: "tcp", hostname:
      //   address, port })} ${reason}` to failures (reason: describeNetError(error),
      //   or the error's message without " (os error N)"), log
      //   `${describeEndpoint(address, port)}: ${reason}`, and start the next address
      //   at once (no waiting for the delay); if none is left and nothing is running,
      //   finish(allFailed(failures, options)).
      // And if another address is left: set delayTimer to start it after
      // options.attemptDelayMs, logging `no answer from ${describeEndpoint(address,
      // port)} after ${options.attemptDelayMs} ms: trying the next address too`.
    };
    startNext();
  });
}

function allFailed(failures: string[], options: EyeballsOptions): LessonError {
  const hint = failures.every((f) => f.endsWith("connection refused"))
    ? `: is the server running? start it with: deno task ${taskName(options.lesson, "server")}`
    : "";
  return new LessonError(
    `could not connect to ${options.name}: every address failed (${failures.join(", ")})${hint}`,
  );
}
