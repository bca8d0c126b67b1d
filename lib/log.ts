/**
 * A server log that cannot become the bottleneck.
 *
 * Printing a line is a system call, and a terminal can be slow to draw it.
 * One line per connection is fine for five clients; a benchmark that opens
 * 1,000 connections in a burst, or an attacker opening 10,000 a second, would
 * turn the log into the server's main job. A {@linkcode ThrottledLog} prints
 * at most a fixed number of lines per second and summarises the rest:
 *
 * - `event(line)`: something happened ("closed idle connection from ...").
 *   Over the limit, the line is dropped and counted, and the count is printed
 *   when the second is over.
 * - `status(line)`: how things are now ("active connections: 12"). Over the
 *   limit, only the newest status is kept, and printed when the second is over.
 *   So the last word is always the current state.
 *
 * Below the limit every line is printed at once, in order.
 *
 * @module
 */

/** Options for {@linkcode ThrottledLog}. */
export interface ThrottledLogOptions {
  /** Most lines printed per second, not counting summaries (default 20). */
  maxLinesPerSecond?: number;
  /** Where lines go (default `console.log`). */
  write?: (line: string) => void;
}

/**
 * Prints at most `maxLinesPerSecond` lines a second; see the module docs.
 * Call {@linkcode ThrottledLog.flush} before exiting, so held-back lines are
 * not lost (it also cancels the pending timer).
 *
 * @example
 * ```ts
 * import { ThrottledLog } from "./log.ts";
 *
 * const log = new ThrottledLog({ maxLinesPerSecond: 2 });
 * log.status("active connections: 1"); // printed
 * log.event("closed idle connection from 127.0.0.1:40000"); // printed
 * log.status("active connections: 2"); // held back: over the limit
 * log.status("active connections: 3"); // replaces the held-back status
 * log.flush(); // prints "active connections: 3"
 * ```
 */
export class ThrottledLog {
  #max: number;
  #write: (line: string) => void;
  #windowStart = -Infinity;
  #printedInWindow = 0;
  #skippedEvents = 0;
  #heldStatus: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Creates a log.
   *
   * @param options the line limit and where lines go
   */
  constructor(options: ThrottledLogOptions = {}) {
    this.#max = options.maxLinesPerSecond ?? 20;
    this.#write = options.write ?? ((line) => console.log(line));
  }

  /**
   * Logs something that happened; dropped (and counted) over the limit.
   *
   * @param line one line of text
   */
  event(line: string): void {
    if (this.#allow()) {
      this.#write(line);
    } else {
      this.#skippedEvents++;
      this.#holdUntilNextSecond();
    }
  }

  /**
   * Logs the current state; over the limit, only the newest state is printed,
   * when the second is over.
   *
   * @param line one line of text
   */
  status(line: string): void {
    if (this.#allow()) {
      this.#heldStatus = undefined;
      this.#write(line);
    } else {
      this.#heldStatus = line;
      this.#holdUntilNextSecond();
    }
  }

  /** Prints what was held back (a count of dropped events, the newest status) now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#skippedEvents > 0) {
      const s = this.#skippedEvents === 1 ? "" : "s";
      this.#write(
        `(${this.#skippedEvents} more event${s} not shown: at most ${this.#max} lines/s)`,
      );
      this.#skippedEvents = 0;
    }
    if (this.#heldStatus !== undefined) {
      this.#write(this.#heldStatus);
      this.#heldStatus = undefined;
    }
  }

  /** True if one more line fits in the current one-second window. */
  #allow(): boolean {
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#printedInWindow = 0;
    }
    if (this.#printedInWindow >= this.#max) return false;
    this.#printedInWindow++;
    return true;
  }

  /** One timer at most, firing when the current window ends. */
  #holdUntilNextSecond(): void {
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#windowStart + 1000 - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, wait);
  }
}

/**
 * The log of what peers cause: "connection from ...", "closed connection
 * ...", one line per connection or per bad request. A client that opens and
 * closes connections in a loop must not be able to make the server write
 * faster than a terminal draws (a slow terminal, or an SSH session, may
 * draw 30 KB a second: then every `console.log` waits, and so does every
 * other client). One per program, so that all of those lines share one
 * budget: at most 50 a second, the rest counted.
 *
 * @example
 * ```ts
 * import { peerLog } from "./log.ts";
 * peerLog.event("connection from 127.0.0.1:40000");
 * peerLog.flush(); // before exiting: prints the count of lines not shown, if any
 * ```
 */
export const peerLog: ThrottledLog = new ThrottledLog({ maxLinesPerSecond: 50 });
