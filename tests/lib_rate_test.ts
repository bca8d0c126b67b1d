/** lib/rate.ts: the token bucket, on a clock given by hand (no timing). */
import { assertEquals, assertThrows } from "@std/assert";
import { TokenBucket } from "../lib/rate.ts";

Deno.test("TokenBucket: a burst at once, then the rate, never more than the burst", () => {
  const bucket = new TokenBucket({ rate: 10, burst: 5 }, 1000);
  const taken = Array.from({ length: 7 }, () => bucket.take(1000));
  assertEquals(taken, [true, true, true, true, true, false, false]);
  // 10 a second: one token every 100 ms, none before.
  assertEquals(bucket.take(1099), false);
  assertEquals(bucket.take(1100), true);
  assertEquals(bucket.take(1100), false);
  // A long quiet time fills the bucket to the burst, not beyond.
  assertEquals(bucket.tokens(60_000), 5);
  assertEquals(Array.from({ length: 6 }, () => bucket.take(60_000)).filter(Boolean).length, 5);
});

Deno.test("TokenBucket: a refused take takes nothing; cost; fractional rates", () => {
  const bucket = new TokenBucket({ rate: 0.5, burst: 2 }, 0); // one every 2 s
  assertEquals(bucket.take(0, 3), false); // more than it holds: refused, nothing taken
  assertEquals(bucket.tokens(0), 2);
  assertEquals(bucket.take(0, 2), true);
  assertEquals(bucket.take(1999), false);
  assertEquals(bucket.take(2000), true);
  // A clock that goes back gives nothing (and takes nothing).
  assertEquals(bucket.tokens(1000), 0);
  assertEquals(bucket.tokens(3000), 0.5);
});

Deno.test("TokenBucket: a rate or burst that could never let anything through is refused", () => {
  assertThrows(() => new TokenBucket({ rate: 0, burst: 5 }), RangeError);
  assertThrows(() => new TokenBucket({ rate: 1, burst: 0 }), RangeError);
  assertThrows(() => new TokenBucket({ rate: NaN, burst: 1 }), RangeError);
});
