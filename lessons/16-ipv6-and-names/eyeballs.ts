/**
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
      Deno.connect({ hostname: address, port, signal: cancel.signal }).then((conn) => {
        running--;
        if (done) return conn.close(); // another attempt won: this one is not needed
        finish(conn);
      }, (error) => {
        running--;
        if (done) return;
        const reason = describeNetError(error) ??
          String(error?.message ?? error).replace(/ \(os error \d+\)$/, "");
        failures.push(`${formatAddr({ transport: "tcp", hostname: address, port })} ${reason}`);
        options.log(`${describeEndpoint(address, port)}: ${reason}`);
        if (next < addresses.length) startNext(); // a failure starts the next one at once
        else if (running === 0) finish(allFailed(failures, options));
      });
      // No answer within the attempt delay: start the next address as well.
      if (next < addresses.length) {
        delayTimer = setTimeout(() => {
          options.log(
            `no answer from ${
              describeEndpoint(address, port)
            } after ${options.attemptDelayMs} ms: ` +
              "trying the next address too",
          );
          startNext();
        }, options.attemptDelayMs);
      }
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
