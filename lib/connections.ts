/**
 * Idle timeouts for thousands of connections, without a timer per read.
 *
 * The simple way to close a silent connection is a timer around every read:
 * start it before `read`, cancel it when data arrives (`readWithTimeout` in
 * `io.ts` does that). For one connection that is fine. For 10,000 busy
 * connections it means creating and cancelling a timer for every read,
 * hundreds of thousands a second, and the timers cost more than the echo.
 *
 * An {@linkcode IdleTracker} needs one timer for the whole server:
 *
 * - The timer ticks a few times a second and advances a coarse clock
 *   (`tracker.now`, a plain counter of ticks).
 * - A connection remembers when it was last active by copying that number:
 *   `item.lastActive = tracker.now`. That is one assignment: no system call,
 *   no timer, nothing to cancel.
 * - On each tick, the tracker walks its connections and hands the ones that
 *   have been quiet for longer than the idle timeout to `onIdle`.
 *
 * The price is precision: a connection is closed between the timeout and the
 * timeout plus one tick (never early). For timeouts measured in seconds or
 * minutes nobody notices. The walk costs a few microseconds per thousand
 * connections per tick.
 *
 * @module
 */

/** Something an {@linkcode IdleTracker} can watch: it records its last activity. */
export interface Trackable {
  /** The tracker's clock (`tracker.now`) when this was last active. */
  lastActive: number;
}

/** Options for {@linkcode IdleTracker}. */
export interface IdleTrackerOptions<T> {
  /** How long an item may stay inactive, in milliseconds. */
  idleTimeoutMs: number;
  /**
   * Called on each tick for every item that has been inactive for longer than
   * `idleTimeoutMs`, until it is removed with `delete`.
   */
  onIdle: (item: T) => void;
  /**
   * Milliseconds between ticks. Default: a quarter of the idle timeout, at
   * most 1000 and at least 10.
   */
  tickMs?: number;
}

/**
 * A set of connections (or anything {@linkcode Trackable}) with one coarse
 * clock and one sweep timer for all of them. The timer does not keep a
 * program alive; call {@linkcode IdleTracker.stop} when done.
 *
 * @example
 * ```ts
 * import { IdleTracker } from "./connections.ts";
 *
 * const tracker = new IdleTracker<{ lastActive: number; name: string }>({
 *   idleTimeoutMs: 60_000,
 *   onIdle: (client) => console.log(`${client.name} has been quiet for a minute`),
 * });
 * const client = { lastActive: tracker.now, name: "alice" };
 * tracker.add(client);
 * // ... whenever the client reads or writes something:
 * client.lastActive = tracker.now;
 * // ... when the connection ends:
 * tracker.delete(client);
 * tracker.stop();
 * ```
 */
export class IdleTracker<T extends Trackable> implements Iterable<T> {
  /** The coarse clock: the number of ticks so far. */
  now = 0;
  /** Milliseconds between ticks. */
  readonly tickMs: number;
  #items = new Set<T>();
  #limitTicks: number;
  #onIdle: (item: T) => void;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Creates the tracker and starts its timer.
   *
   * @param options the idle timeout and what to do with idle items
   */
  constructor(options: IdleTrackerOptions<T>) {
    this.tickMs = options.tickMs ?? Math.min(1000, Math.max(10, options.idleTimeoutMs / 4));
    // Idle means more than `limit` whole ticks since the last activity; the
    // activity may have been late in its tick, hence the strict ">" in #sweep.
    this.#limitTicks = Math.ceil(options.idleTimeoutMs / this.tickMs);
    this.#onIdle = options.onIdle;
    const timer = setInterval(() => this.#sweep(), this.tickMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** How many items are tracked. */
  get size(): number {
    return this.#items.size;
  }

  /**
   * Starts tracking `item`, as active now.
   *
   * @param item the connection (or other item) to watch
   */
  add(item: T): void {
    item.lastActive = this.now;
    this.#items.add(item);
  }

  /**
   * Stops tracking `item`; returns false if it was not tracked.
   *
   * @param item the item to forget
   */
  delete(item: T): boolean {
    return this.#items.delete(item);
  }

  /** The tracked items, in the order they were added. */
  [Symbol.iterator](): Iterator<T> {
    return this.#items.values();
  }

  /** Stops the timer. The items stay in the set. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    this.now++;
    for (const item of this.#items) {
      if (this.now - item.lastActive > this.#limitTicks) this.#onIdle(item);
    }
  }
}
