/**
 * Fair reads for a server with many busy connections: {@linkcode ReadTurns},
 * which lesson 08's echo server (and so lessons 09 and 10), lesson 12's chat
 * server (and so 13 and 20) and lesson 19's proxy read through.
 *
 * The problem it solves: with 1,000 clients doing ping-pong on one
 * `Deno.listen` server, some wait seconds while others are served hundreds
 * of times, and p99 is several times Node's (bench/fairness.ts reproduces it;
 * lesson 08's README, "Going deeper", has the numbers). Smaller or bigger
 * buffers, yielding, BYOB readers and streams do not change it; keeping the
 * number of reads waiting in Deno at once under Tokio's cooperative budget
 * does.
 *
 * @module
 */

/**
 * At most this many reads wait in Deno at once (see {@linkcode ReadTurns}).
 * Each echo is a read and a write: 64 of them are the 128 socket operations
 * Tokio lets one task do before it must yield. (96 left a long p99.9 and 128
 * was as unfair as no turns at all; 64 was fair in every run: bench/fairness.ts.)
 */
export const READ_TURNS = 64;
/** How often a silent client's read gives its turn back: after 2 ticks of this. */
const TURN_TICK_MS = 10;

/**
 * Turns to read, first come, first served: at most `max` reads wait in Deno
 * at once; the others wait here, in a queue, for one to finish.
 *
 * Why: with more sockets ready at the same moment than Tokio's cooperative
 * budget (128 operations before the runtime must yield), Deno serves them
 * unfairly: with 1,000 busy clients some wait seconds while others are
 * served over and over (bench/fairness.ts measures it). Waiting here costs
 * little, because by the time a read gets its turn its data has usually
 * arrived; and the queue is fair. A read whose client is silent would hold
 * its turn forever, so one shared timer takes the turn back from a read
 * that has waited through 2 ticks (10-20 ms): it goes on waiting, uncounted.
 *
 * @example
 * ```ts
 * import { ReadTurns } from "./turns.ts";
 * const turns = new ReadTurns(64);
 * const conn = { read: (buffer: Uint8Array) => Promise.resolve(buffer.length) }; // any Deno.Conn
 * const n = await turns.read(conn, new Uint8Array(8)); // conn.read(buffer), in its turn: 8
 * turns.stop(); // when the server stops: ends the timer
 * ```
 */
export class ReadTurns {
  #counted = 0;
  #queue: (() => void)[] = [];
  /** The reads that hold a turn, oldest first, with the tick they took it on. */
  #held = new Map<object, number>();
  #tick = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** The most reads waiting in Deno at once. */
  readonly max: number;
  /** Milliseconds between looks for silent reads (a turn is taken back after 2). */
  readonly tickMs: number;

  /**
   * Turns for at most `max` reads at once.
   *
   * @param max the most reads waiting in Deno at once
   * @param tickMs how often silent reads are looked for
   * @example
   * ```ts
   * import { READ_TURNS, ReadTurns } from "./turns.ts";
   * const turns = new ReadTurns(READ_TURNS); // 64, every 10 ms
   * ```
   */
  constructor(max: number, tickMs: number = TURN_TICK_MS) {
    this.max = max;
    this.tickMs = tickMs;
  }

  /**
   * Reads holding a turn now, and reads queued for one.
   *
   * @example
   * ```ts
   * import { ReadTurns } from "./turns.ts";
   * new ReadTurns(64).counts; // { holding: 0, queued: 0 }
   * ```
   */
  get counts(): { holding: number; queued: number } {
    return { holding: this.#counted, queued: this.#queue.length };
  }

  /**
   * `conn.read(buffer)`, once it is this read's turn (at once if a turn is free).
   *
   * @example
   * ```ts ignore
   * const n = await turns.read(conn, buffer); // null at EOF, as conn.read
   * ```
   */
  async read(
    conn: Pick<Deno.Conn, "read">,
    buffer: Uint8Array,
  ): Promise<number | null> {
    if (this.#counted < this.max) this.#counted++;
    else await new Promise<void>((resolve) => this.#queue.push(resolve));
    const turn = {};
    this.#held.set(turn, this.#tick);
    // The timer runs only while some read holds a turn: an idle server sleeps.
    this.#timer ??= setInterval(() => this.#sweep(), this.tickMs);
    try {
      return await conn.read(buffer);
    } finally {
      if (this.#held.delete(turn)) this.#pass();
    }
  }

  /** A turn ends: the first in the queue takes it over, or it is free. */
  #pass(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#counted--;
  }

  /** Takes the turns back from reads that have waited 2 ticks or more. */
  #sweep(): void {
    this.#tick++;
    for (const [turn, since] of this.#held) {
      if (this.#tick - since < 2) break; // the rest are younger
      this.#held.delete(turn);
      this.#pass();
    }
    if (this.#held.size === 0) this.stop();
  }

  /**
   * Stops the timer (it starts again with the next read).
   *
   * @example
   * ```ts ignore
   * turns.stop(); // in the server's shutdown, after the last connection closed
   * ```
   */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
