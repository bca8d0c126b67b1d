/**
 * Flood control: {@linkcode TokenBucket}, how much one peer may make a
 * server do per second (lesson 12's chat, and so lessons 13 and 20).
 *
 * @module
 */

/** How fast a {@linkcode TokenBucket} refills, and how much it holds. */
export interface RateLimit {
  /** Tokens added per second: the rate a peer may keep up for ever. Fractions are fine. */
  rate: number;
  /** The most tokens the bucket holds: how much may come at once after a quiet moment. */
  burst: number;
}

/**
 * A token bucket, the usual way to say "at most `burst` at once, then `rate`
 * a second" (nginx's `limit_req`, IRC servers' flood control, network
 * shapers). The bucket starts full with `burst` tokens; each action takes one
 * (or `cost`); tokens come back at `rate` per second, never more than
 * `burst`. An action with no token left is refused: `take` returns false and
 * takes nothing.
 *
 * Why a bucket and not a counter per second: a counter lets 2 × the limit
 * through around the turn of a second, and forgets at once. The bucket lets
 * a human's paste through whole (the burst) and holds a script to the rate,
 * with one number and one timestamp per peer and no timer.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./rate.ts";
 * const bucket = new TokenBucket({ rate: 2, burst: 3 }, 0); // clock in ms, starting at 0
 * [bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)]; // [true, true, true, false]
 * bucket.take(499); // false: half a second brings back only 0.998 of a token
 * bucket.take(500); // true: 2 a second is one token every 500 ms
 * ```
 */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #at: number;

  /**
   * A full bucket: `burst` tokens.
   *
   * @param limit the rate (per second) and the burst (at most this many at once)
   * @param now the clock in milliseconds (default `performance.now()`)
   */
  constructor(limit: RateLimit, now: number = performance.now()) {
    if (!(limit.rate > 0) || !(limit.burst >= 1)) {
      throw new RangeError(`a token bucket needs a rate > 0 and a burst >= 1`);
    }
    this.#rate = limit.rate;
    this.#burst = limit.burst;
    this.#tokens = limit.burst;
    this.#at = now;
  }

  /** The tokens left at `now` (fractions count: 0.5 is half-way to the next one). */
  tokens(now: number = performance.now()): number {
    this.#refill(now);
    return this.#tokens;
  }

  /**
   * Takes `cost` tokens if there are that many; false (and nothing taken) if
   * not: the action is over the limit.
   */
  take(now: number = performance.now(), cost = 1): boolean {
    this.#refill(now);
    if (this.#tokens < cost) return false;
    this.#tokens -= cost;
    return true;
  }

  #refill(now: number): void {
    const elapsed = now - this.#at;
    if (elapsed <= 0) return; // a clock that went back gives nothing
    this.#at = now;
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#rate / 1000);
  }
}
