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
 * does. Turns cost round trips, so they start only in a crowd (112 reads at
 * once): with 100 busy clients a server reads as if they were not there.
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
/**
 * Reads queue only in a crowd: while fewer than this many want to wait in
 * Deno at once, every read goes straight in (a server with 100 busy clients
 * never queues, and pays nothing for turns). 112 stays below the 128 where
 * Deno turns unfair: with 120 busy clients every wait was still short, with
 * 130 some waited 200 ms.
 */
export const QUEUE_FROM = 112;
/** How often a silent client's read gives its turn back: after 2 ticks of this. */
const TURN_TICK_MS = 10;

/**
 * Turns to read, first come, first served: in a crowd (`queueFrom` reads at
 * once), at most `max` reads wait in Deno at once; the others wait here, in
 * a queue, for one to finish. Below the crowd, no read waits here at all.
 *
 * Why: with more sockets ready at the same moment than Tokio's cooperative
 * budget (128 operations before the runtime must yield), Deno serves them
 * unfairly: with 1,000 busy clients some wait seconds while others are
 * served over and over (bench/fairness.ts measures it). Waiting here costs
 * little, because by the time a read gets its turn its data has usually
 * arrived; and the queue is fair. A read whose client is silent would hold
 * its turn forever, so one shared timer takes the turn back from a read
 * that has waited through 2 ticks (10-20 ms): it goes on waiting, uncounted.
 * Turns cost round trips (more, shorter turns of the event loop: 10-20%
 * with 100 busy clients), so there are none while the server is not
 * crowded: reads queue only once `queueFrom` (112) are waiting in Deno,
 * and then until the queue is empty.
 *
 * @example
 * ```ts
 * import { ReadTurns } from "./turns.ts";
 * const turns = new ReadTurns(); // 64 turns, from 112 reads at once
 * const conn = { read: (buffer: Uint8Array) => Promise.resolve(buffer.length) }; // any Deno.Conn
 * const n = await turns.read(conn, new Uint8Array(8)); // conn.read(buffer), in its turn: 8
 * turns.stop(); // when the server stops: ends the timer
 * ```
 */
export class ReadTurns {
  #counted = 0;
  #queue: (() => void)[] = [];
  #tick = 0;
  /**
   * How many reads still hold the turn they took on each of the last three
   * ticks (at `tick % 3`). Counts, not a list of reads: a Map keyed by a new
   * object per read cost 250 ns a read, a tenth of the round trips with 100
   * clients.
   */
  #holding = [0, 0, 0];
  #timer: ReturnType<typeof setInterval> | undefined;

  /** The most reads waiting in Deno at once, in a crowd. */
  readonly max: number;
  /** From this many reads at once, reads queue (until the queue is empty again). */
  readonly queueFrom: number;
  /** Milliseconds between looks for silent reads (a turn is taken back after 2). */
  readonly tickMs: number;

  /**
   * Turns for at most `max` reads at once, once `queueFrom` want to wait in Deno.
   *
   * @param options `max` turns (64), queue from `queueFrom` reads (112, at least `max`),
   *   look for silent reads every `tickMs` (10)
   * @example
   * ```ts
   * import { ReadTurns } from "./turns.ts";
   * const turns = new ReadTurns(); // 64 turns from 112 reads at once, every 10 ms
   * const strict = new ReadTurns({ max: 2, queueFrom: 2 }); // the third read queues
   * ```
   */
  constructor(
    options: { max?: number; queueFrom?: number; tickMs?: number } = {},
  ) {
    this.max = options.max ?? READ_TURNS;
    this.queueFrom = Math.max(this.max, options.queueFrom ?? QUEUE_FROM);
    this.tickMs = options.tickMs ?? TURN_TICK_MS;
  }

  /**
   * Reads holding a turn now, and reads queued for one.
   *
   * @example
   * ```ts
   * import { ReadTurns } from "./turns.ts";
   * new ReadTurns().counts; // { holding: 0, queued: 0 }
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
    // Straight in while the server is not crowded, or while a turn is free.
    const limit = this.#queue.length === 0 ? this.queueFrom : this.max;
    if (this.#counted < limit) this.#counted++;
    else await new Promise<void>((resolve) => this.#queue.push(resolve));
    const since = this.#tick;
    this.#holding[since % 3]++;
    // The timer runs only while some read holds a turn: an idle server sleeps.
    this.#timer ??= setInterval(() => this.#sweep(), this.tickMs);
    try {
      return await conn.read(buffer);
    } finally {
      // Unless the sweep took it back already (2 ticks later), the turn ends now.
      if (this.#tick - since < 2) {
        this.#holding[since % 3]--;
        this.#pass();
      }
    }
  }

  /**
   * A turn ends: the first in the queue takes it over, or it is free. (After
   * a crowd formed, turns over `max` end without passing on.)
   */
  #pass(): void {
    const next = this.#counted <= this.max ? this.#queue.shift() : undefined;
    if (next) next();
    else this.#counted--;
  }

  /** Takes the turns back from reads that have waited 2 ticks or more. */
  #sweep(): void {
    this.#tick++;
    // The reads that took their turn 2 ticks ago and still hold it: silent.
    // Their reads go on, uncounted; their turns pass on.
    const old = (this.#tick + 1) % 3; // the slot of tick - 2 (never negative)
    for (let silent = this.#holding[old]; silent > 0; silent--) this.#pass();
    this.#holding[old] = 0;
    if (this.#holding.every((n) => n === 0)) this.stop();
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
