/**
 * A load generator for echo servers: many connections at once, every echoed
 * byte checked, round trips per second, MB/s and latency percentiles.
 *
 * Two ways to load a server:
 *
 * - **Ping-pong** ({@linkcode LoadOptions} `mode: "ping-pong"`): each
 *   connection sends a message, waits for the whole echo, checks it, and sends
 *   the next one. It measures latency: one message in flight per connection.
 * - **Stream** (`mode: "stream"`): each connection writes as fast as the
 *   server takes the bytes while a second task reads the echo at the same
 *   time. It measures throughput: the connection is never idle.
 *
 * What we send must make a wrong echo visible, and must cost no CPU to make.
 * {@linkcode EchoPattern} fills a buffer with random bytes once; each
 * connection's bytes are a window sliding along it, starting at a different
 * place for each connection, so every message differs from the one before and
 * from the other connections' messages. A byte flipped, lost, repeated, or
 * sent to the wrong client shows up as a mismatch. Sending is free (a view of
 * the buffer, no copy) and checking is one comparison.
 *
 * Latencies go into a {@linkcode LatencyHistogram}: a fixed array of
 * counters, so a run of a billion round trips uses the same memory as a run
 * of ten.
 *
 * @module
 */

import { equals } from "@std/bytes";
import { describeNetError, LessonError } from "./errors.ts";
import { IdleTracker } from "./connections.ts";
import { writeAll } from "./io.ts";
import { closeQuietly, connect, connectUnix } from "./net.ts";

/**
 * The pattern repeats every this many bytes. It is a prime number, so no
 * message size lines up with it: message 2 never looks like message 1.
 *
 * @example
 * ```ts
 * import { EchoPattern, PATTERN_PERIOD } from "./load.ts";
 * const pattern = new EchoPattern(1);
 * pattern.bytes(0, PATTERN_PERIOD, 1)[0] === pattern.bytes(0, 0, 1)[0]; // true: it repeats
 * ```
 */
export const PATTERN_PERIOD = 1_048_573;

/** How far apart (in the pattern) connections start, so they send different bytes. */
const CONNECTION_STRIDE = 40_009;

/** The stream reader's buffer size. */
const READ_BYTES = 64 * 1024;

/**
 * How many error messages a {@linkcode LoadStats} keeps (it counts them all).
 *
 * @example
 * ```ts
 * import { LoadStats, MAX_ERRORS_KEPT } from "./load.ts";
 * const stats = new LoadStats();
 * for (let i = 0; i < 100; i++) stats.addError(`connection ${i + 1}: timed out`);
 * stats.errors.length === MAX_ERRORS_KEPT; // true
 * stats.errorCount; // 100
 * ```
 */
export const MAX_ERRORS_KEPT = 10;

/**
 * The bytes each connection sends: a window on one buffer of random bytes,
 * made once. Connection `id`'s stream of bytes starts at its own place in the
 * buffer; message `k` of size `s` is that stream's bytes `k * s` to
 * `(k + 1) * s`.
 *
 * @example
 * ```ts
 * import { EchoPattern } from "./load.ts";
 * const pattern = new EchoPattern(64);
 * const message = pattern.bytes(0, 0, 64); // connection 0, its first 64 bytes
 * pattern.check(0, 0, message.slice()); // -1: every byte as expected
 * const damaged = message.slice();
 * damaged[5] ^= 1;
 * pattern.check(0, 0, damaged); // 5: the first wrong byte
 * ```
 */
export class EchoPattern {
  #pool: Uint8Array;
  #maxLength: number;

  /**
   * Fills the buffer with random bytes (once; the rest is free).
   *
   * @param maxLength the longest piece that {@linkcode EchoPattern.bytes} will be asked for
   * @example
   * ```ts
   * import { EchoPattern } from "./load.ts";
   * const pattern = new EchoPattern(64 * 1024); // pieces of up to 64 KiB
   * ```
   */
  constructor(maxLength: number) {
    this.#maxLength = maxLength;
    this.#pool = new Uint8Array(PATTERN_PERIOD + maxLength);
    // One period of random bytes (getRandomValues fills at most 64 KiB per call).
    for (let i = 0; i < PATTERN_PERIOD; i += 65536) {
      crypto.getRandomValues(this.#pool.subarray(i, Math.min(i + 65536, PATTERN_PERIOD)));
    }
    // Then the same bytes again, so that pool[i] is pool[i % PATTERN_PERIOD]
    // everywhere: a piece that runs past the period goes on where it should.
    for (let i = PATTERN_PERIOD; i < this.#pool.length; i += PATTERN_PERIOD) {
      this.#pool.copyWithin(i, 0, Math.min(PATTERN_PERIOD, this.#pool.length - i));
    }
  }

  /** Where byte `position` of connection `id` sits in the buffer. */
  #start(id: number, position: number): number {
    return (id * CONNECTION_STRIDE + position) % PATTERN_PERIOD;
  }

  /**
   * The `length` bytes that connection `id` sends from `position` on. This is
   * a view, not a copy: do not change it.
   *
   * @example
   * ```ts
   * import { EchoPattern } from "./load.ts";
   * const pattern = new EchoPattern(64);
   * const message3 = pattern.bytes(0, 2 * 64, 64); // connection 0, message 3 of 64 bytes
   * ```
   */
  bytes(id: number, position: number, length: number): Uint8Array {
    if (length > this.#maxLength) {
      throw new RangeError(`asked for ${length} bytes, more than ${this.#maxLength}`);
    }
    const start = this.#start(id, position);
    return this.#pool.subarray(start, start + length);
  }

  /**
   * Where to put received bytes in a buffer for the fastest check: comparing
   * goes 4 bytes at a time when both sides sit at the same offset modulo 4.
   * Read the echo of `position` into `buffer.subarray(alignment(...))`.
   *
   * @example
   * ```ts
   * import { EchoPattern } from "./load.ts";
   * const pattern = new EchoPattern(64);
   * const buffer = new Uint8Array(64 + 3);
   * const align = pattern.alignment(0, 0); // 0 to 3
   * const echo = buffer.subarray(align, align + 64); // read the echo into this
   * ```
   */
  alignment(id: number, position: number): number {
    return this.#start(id, position) % 4;
  }

  /**
   * Checks that `received` is what connection `id` sent from `position` on.
   * Returns -1 if every byte is right, otherwise the index of the first wrong one.
   *
   * @example
   * ```ts
   * import { EchoPattern } from "./load.ts";
   * const pattern = new EchoPattern(64);
   * pattern.check(0, 0, pattern.bytes(1, 0, 64)); // not -1: connection 1's bytes, not 0's
   * ```
   */
  check(id: number, position: number, received: Uint8Array): number {
    const expected = this.bytes(id, position, received.length);
    if (equals(received, expected)) return -1;
    let i = 0;
    while (received[i] === expected[i]) i++;
    return i;
  }
}

/** Bucket `i` of the histogram counts latencies from GROWTH^i to GROWTH^(i+1) µs. */
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
/** Enough buckets for latencies up to about 6 hours. */
const BUCKETS = 1200;

/**
 * A {@linkcode LatencyHistogram} as plain data: `[bucket, count]` pairs for
 * the buckets in use, and the largest latency (`null` if none).
 *
 * @example
 * ```ts
 * import type { LatencyHistogramData } from "./load.ts";
 * const empty: LatencyHistogramData = { buckets: [], max: null };
 * ```
 */
export interface LatencyHistogramData {
  /** `[bucket index, how many latencies]`, for the buckets that are not empty. */
  buckets: [number, number][];
  /** The largest latency recorded (ms), or `null` if nothing was recorded. */
  max: number | null;
}

/**
 * Counts latencies in buckets 2% wide, so percentiles are accurate to about
 * 1% and memory stays the same however many latencies are recorded.
 *
 * @example
 * ```ts
 * import { LatencyHistogram } from "./load.ts";
 * const histogram = new LatencyHistogram();
 * for (let ms = 1; ms <= 100; ms++) histogram.record(ms);
 * histogram.count; // 100
 * histogram.percentile(50); // about 50 (ms)
 * histogram.percentile(99); // about 99 (ms)
 * histogram.max; // 100 (exactly)
 * ```
 */
export class LatencyHistogram {
  #counts = new Float64Array(BUCKETS);
  #count = 0;
  #max = NaN;

  /**
   * How many latencies were recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "./load.ts";
   * new LatencyHistogram().count; // 0
   * ```
   */
  get count(): number {
    return this.#count;
  }

  /**
   * The largest latency recorded, exactly (ms); `NaN` if nothing was recorded.
   * Look at it too: a server that makes one client in a thousand wait a
   * second has a fine p99.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "./load.ts";
   * const histogram = new LatencyHistogram();
   * histogram.record(0.1);
   * histogram.record(1500);
   * histogram.max; // 1500
   * ```
   */
  get max(): number {
    return this.#max;
  }

  /**
   * Records one latency, in milliseconds.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "./load.ts";
   * const histogram = new LatencyHistogram();
   * const sentAt = performance.now();
   * // ... send a message, wait for its answer ...
   * histogram.record(performance.now() - sentAt);
   * ```
   */
  record(ms: number): void {
    if (!(ms <= this.#max)) this.#max = ms; // (also when #max is still NaN)
    const us = ms * 1000;
    const bucket = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) / LOG_GROWTH));
    this.#counts[bucket]++;
    this.#count++;
  }

  /**
   * Adds the latencies of another histogram (or of its
   * {@linkcode LatencyHistogram.toJSON} form, e.g. from another load process)
   * to this one. Percentiles of the sum are exact to the bucket; an average of
   * several runs' percentiles would not be a percentile of anything.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "./load.ts";
   * const a = new LatencyHistogram();
   * const b = new LatencyHistogram();
   * for (let i = 0; i < 99; i++) a.record(1);
   * b.record(50);
   * a.merge(b.toJSON());
   * a.count; // 100
   * a.max; // 50
   * ```
   */
  merge(other: LatencyHistogram | LatencyHistogramData): void {
    const data = other instanceof LatencyHistogram ? other.toJSON() : other;
    const bad = data.buckets.find(([b, count]) =>
      !(Number.isInteger(b) && b >= 0 && b < BUCKETS) || !(count >= 0)
    );
    if (bad) throw new RangeError(`not a histogram bucket: [${bad}]`);
    for (const [bucket, count] of data.buckets) {
      this.#counts[bucket] += count;
      this.#count += count;
    }
    if (data.max !== null && !(data.max <= this.#max)) this.#max = data.max;
  }

  /**
   * The counts as plain data (only the buckets in use), for `JSON.stringify`:
   * how a load process sends its latencies to the one that merges them.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "./load.ts";
   * const histogram = new LatencyHistogram();
   * histogram.record(2);
   * const copy = new LatencyHistogram();
   * copy.merge(JSON.parse(JSON.stringify(histogram)));
   * copy.max; // 2
   * ```
   */
  toJSON(): LatencyHistogramData {
    const buckets: [number, number][] = [];
    this.#counts.forEach((count, bucket) => {
      if (count > 0) buckets.push([bucket, count]);
    });
    return { buckets, max: Number.isNaN(this.#max) ? null : this.#max };
  }

  /**
   * The latency (ms) that `p` percent of the recorded ones do not exceed,
   * e.g. `percentile(99)`; `NaN` if nothing was recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "./load.ts";
   * const histogram = new LatencyHistogram();
   * for (let i = 0; i < 99; i++) histogram.record(1);
   * histogram.record(50);
   * histogram.percentile(50); // about 1
   * histogram.percentile(100); // about 50
   * ```
   */
  percentile(p: number): number {
    if (this.#count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket];
      // The middle of the bucket (on a log scale): at most 1% off.
      if (seen >= rank) return GROWTH ** (bucket + 0.5) / 1000;
    }
    return NaN; // not reached
  }
}

/**
 * What to run: where the server is, how many connections, and either
 * ping-pong (`messages` round trips per connection, or as many as fit in
 * `seconds`) or a stream (`seconds`).
 *
 * @example
 * ```ts
 * import type { LoadOptions } from "./load.ts";
 * const options: LoadOptions = {
 *   host: "127.0.0.1",
 *   port: 65409,
 *   lesson: 9,
 *   connections: 10,
 *   size: 64,
 *   timeoutMs: 10_000,
 *   mode: "ping-pong",
 *   messages: 100,
 * };
 * ```
 */
export type LoadOptions =
  & {
    /** The server's address. */
    host: string;
    /** The server's port. */
    port: number;
    /** The lesson number, for the hint when nobody is listening. */
    lesson: number;
    /** If set, connect to this Unix socket instead of host:port (lesson 17 compares the two). */
    path?: string;
    /** How many connections run at once. */
    connections: number;
    /** Bytes per message (ping-pong) or per write (stream). */
    size: number;
    /** The longest wait for an echo (or for the server to close) before a connection fails. */
    timeoutMs: number;
    /**
     * Called once every connection is up, before the first byte is sent;
     * the traffic starts when it resolves. A benchmark that runs several
     * load processes uses it to start them all at the same moment.
     */
    beforeTraffic?: () => void | Promise<void>;
  }
  & (
    | {
      mode: "ping-pong";
      /** Round trips per connection. */
      messages: number;
      /** If set, each connection stops after this many seconds, even with messages left. */
      seconds?: number;
    }
    | { mode: "stream"; /** How long each connection keeps writing. */ seconds: number }
  );

/**
 * The counters of a run, updated as it goes: read them while it runs to
 * show progress (see {@linkcode formatProgress}), and at the end for the
 * summary (see {@linkcode formatReport}).
 *
 * @example
 * ```ts
 * import { LoadStats } from "./load.ts";
 * const stats = new LoadStats();
 * stats.addError("connection 2: connection reset by peer");
 * stats.errorCount; // 1
 * ```
 */
export class LoadStats {
  /** Connections established so far. */
  connected = 0;
  /** Round trips done: messages echoed (ping-pong) or writes echoed in full (stream). */
  roundTrips = 0;
  /** Bytes echoed back and checked. */
  bytes = 0;
  /** How many connections failed. */
  errorCount = 0;
  /** Why they failed: the first {@linkcode MAX_ERRORS_KEPT} messages. */
  errors: string[] = [];
  /**
   * Round trips of each connection, by its index, filled in as each one
   * ends. Fairness shows here: the fewest next to the most.
   */
  roundTripsByConnection: number[] = [];
  /** Round-trip latencies. */
  latency: LatencyHistogram = new LatencyHistogram();
  /** `performance.now()` when the traffic started (all connections up); NaN before. */
  startedAt: number = NaN;
  /** `performance.now()` when the last echoed byte arrived; NaN before. */
  lastEchoAt: number = NaN;

  /**
   * Counts a failed connection and keeps its message (up to a limit).
   *
   * @example
   * ```ts
   * import { LoadStats } from "./load.ts";
   * const stats = new LoadStats();
   * stats.addError("connection 3: message 7: the server closed the connection");
   * stats.errors; // ["connection 3: message 7: the server closed the connection"]
   * ```
   */
  addError(message: string): void {
    this.errorCount++;
    if (this.errors.length < MAX_ERRORS_KEPT) this.errors.push(message);
  }

  /**
   * Milliseconds from the start of the traffic to the last echo (0 if none).
   *
   * @example
   * ```ts
   * import { LoadStats } from "./load.ts";
   * const stats = new LoadStats();
   * stats.startedAt = 1000;
   * stats.lastEchoAt = 1250;
   * stats.elapsedMs; // 250
   * ```
   */
  get elapsedMs(): number {
    const elapsed = this.lastEchoAt - this.startedAt;
    return Number.isFinite(elapsed) ? elapsed : 0;
  }
}

/** A wrong echo: a byte changed, missing or extra. One connection fails, the run goes on. */
class EchoError extends LessonError {}

/**
 * Runs a load test: opens every connection (a failure to connect ends the
 * run with that error), then runs them all at once. A connection that gets a
 * wrong echo, a short echo, an unexpected EOF, a network error or no answer
 * within `timeoutMs` stops and is counted in `errorCount`; the others go on.
 *
 * @param options what to run
 * @param stats counters to update (pass your own to watch progress)
 * @returns `stats`, complete
 * @example
 * ```ts ignore
 * import { formatReport, type LoadOptions, runLoad } from "./load.ts";
 * const options: LoadOptions = {
 *   host: "127.0.0.1",
 *   port: 65409,
 *   lesson: 9,
 *   connections: 10,
 *   size: 64,
 *   timeoutMs: 10_000,
 *   mode: "ping-pong",
 *   messages: 100,
 * };
 * const stats = await runLoad(options);
 * console.log(formatReport(options, stats).join("\n"));
 * if (stats.errorCount > 0) Deno.exit(1);
 * ```
 */
export async function runLoad(
  options: LoadOptions,
  stats: LoadStats = new LoadStats(),
): Promise<LoadStats> {
  const pattern = new EchoPattern(Math.max(options.size, READ_BYTES));
  const conns: Deno.Conn[] = [];
  // One timer for all connections closes those that wait too long for an
  // echo: a timer around each read made ping-pong a third slower (see connections.ts).
  const tracker = new IdleTracker<LoadConnection>({
    idleTimeoutMs: options.timeoutMs,
    onIdle: (connection) => {
      connection.timedOut = true;
      tracker.delete(connection);
      closeQuietly(connection.conn); // its pending read fails at once
    },
  });
  try {
    // One at a time: a burst of connects can overflow the server's accept queue.
    for (let i = 0; i < options.connections; i++) {
      if (options.path === undefined) {
        const conn = await connect({ ...options, timeoutMs: options.timeoutMs });
        // Send small writes at once, without waiting to fill a packet (Nagle's algorithm).
        conn.setNoDelay(true);
        conns.push(conn);
      } else {
        conns.push(await connectUnix({ ...options, path: options.path })); // no Nagle here
      }
      stats.connected++;
    }
    const run = { options, stats, pattern, tracker };
    await options.beforeTraffic?.();
    stats.startedAt = performance.now();
    await Promise.all(conns.map((conn, id) => runConnection(new LoadConnection(conn, id, run))));
  } finally {
    tracker.stop();
    for (const conn of conns) closeQuietly(conn);
  }
  return stats;
}

/** What the connections of a run share. */
interface Run {
  options: LoadOptions;
  stats: LoadStats;
  pattern: EchoPattern;
  tracker: IdleTracker<LoadConnection>;
}

/** One connection of a run. */
class LoadConnection {
  /** The idle tracker's clock when an echo last arrived. */
  lastActive = 0;
  /** What we are waiting for, for the timeout message. */
  waitingFor = "the echo";
  /** Set by the idle tracker when it closed the connection. */
  timedOut = false;
  /** Round trips done on this connection. */
  roundTrips = 0;

  constructor(readonly conn: Deno.Conn, readonly id: number, readonly run: Run) {}

  /** `conn.read`, noting for the idle tracker that the server is alive. */
  async read(buffer: Uint8Array): Promise<number | null> {
    const n = await this.conn.read(buffer);
    this.lastActive = this.run.tracker.now;
    return n;
  }
}

/** Runs one connection; its failure is counted, never thrown (bugs aside). */
async function runConnection(c: LoadConnection): Promise<void> {
  const { options, stats, tracker } = c.run;
  tracker.add(c);
  try {
    if (options.mode === "ping-pong") await pingPong(c, options.messages, options.seconds);
    else await stream(c, options.seconds);
  } catch (error) {
    const reason = c.timedOut
      ? `timed out after ${options.timeoutMs / 1000} s waiting for ${c.waitingFor}`
      : describeNetError(error);
    if (reason === undefined) throw error;
    stats.addError(`connection ${c.id + 1}: ${reason}`);
  } finally {
    stats.roundTripsByConnection[c.id] = c.roundTrips;
    tracker.delete(c);
    // Closing also ends whatever the other task of this connection was waiting for.
    closeQuietly(c.conn);
  }
}

/** Ping-pong: send a message, read its whole echo, check it, repeat (for at most `seconds`). */
async function pingPong(c: LoadConnection, messages: number, seconds = Infinity): Promise<void> {
  const { options: { size }, stats, pattern } = c.run;
  const buffer = new Uint8Array(size + 3); // + 3: room to align, see EchoPattern.alignment
  const stopAt = stats.startedAt + seconds * 1000;
  for (let k = 0; k < messages; k++) {
    const position = k * size;
    const message = pattern.bytes(c.id, position, size);
    const align = pattern.alignment(c.id, position);
    const echo = buffer.subarray(align, align + size);
    c.waitingFor = `the echo of message ${k + 1}`;
    const sentAt = performance.now();
    if (sentAt >= stopAt) break;
    // Write and read at the same time: a message larger than the socket
    // buffers would otherwise never finish writing (the server would stop
    // reading while its echo waits for us to read).
    await Promise.all([writeAll(c.conn, message), readEcho(c, echo, k + 1)]);
    const wrong = pattern.check(c.id, position, echo);
    if (wrong >= 0) {
      const where = `message ${k + 1}, byte ${wrong + 1} of ${size}`;
      throw new EchoError(mismatch(where, echo[wrong], message[wrong]));
    }
    stats.lastEchoAt = performance.now();
    stats.latency.record(stats.lastEchoAt - sentAt);
    stats.roundTrips++;
    c.roundTrips++;
    stats.bytes += size;
  }
  await goodbye(c, buffer);
}

/** Reads exactly `echo.length` bytes (the echo of message `number`). */
async function readEcho(c: LoadConnection, echo: Uint8Array, number: number): Promise<void> {
  let got = 0;
  while (got < echo.length) {
    // Ask for no more than this echo: any byte beyond it would be an error.
    const n = await c.read(echo.subarray(got));
    if (n === null) {
      throw new EchoError(
        `message ${number}: the server closed the connection after echoing ` +
          `${got} of ${echo.length} bytes`,
      );
    }
    got += n;
  }
}

/**
 * Stream: one task writes for `seconds` while another reads and checks the
 * echo, each at its own pace; then half-close and read the rest.
 */
async function stream(c: LoadConnection, seconds: number): Promise<void> {
  const { options: { size }, stats, pattern } = c.run;
  const stopAt = stats.startedAt + seconds * 1000;
  let queued = 0; // bytes handed to write (the echo may come back before write returns)
  let echoed = 0; // bytes echoed and checked
  // One write at a time is timed, from writing it to the last byte of its echo.
  let timed: { end: number; at: number } | undefined;

  const writing = (async () => {
    while (performance.now() < stopAt) {
      const chunk = pattern.bytes(c.id, queued, size);
      timed ??= { end: queued + size, at: performance.now() };
      queued += size;
      await writeAll(c.conn, chunk);
    }
    await c.conn.closeWrite(); // "nothing more": the server echoes the rest, then closes
  })();

  const reading = (async () => {
    const buffer = new Uint8Array(READ_BYTES + 3);
    while (true) {
      const align = pattern.alignment(c.id, echoed);
      const into = buffer.subarray(align, align + READ_BYTES);
      const n = await c.read(into);
      if (n === null) break;
      if (echoed + n > queued) {
        throw new EchoError(`the server sent ${echoed + n - queued} bytes more than it was sent`);
      }
      const echo = into.subarray(0, n);
      const wrong = pattern.check(c.id, echoed, echo);
      if (wrong >= 0) {
        const where = `byte ${grouped(echoed + wrong + 1)} of the stream`;
        throw new EchoError(mismatch(where, echo[wrong], pattern.bytes(c.id, echoed, n)[wrong]));
      }
      const now = performance.now();
      const writesEchoed = Math.floor((echoed + n) / size) - Math.floor(echoed / size);
      stats.roundTrips += writesEchoed;
      c.roundTrips += writesEchoed;
      echoed += n;
      stats.bytes += n;
      stats.lastEchoAt = now;
      if (timed && echoed >= timed.end) {
        stats.latency.record(now - timed.at);
        timed = undefined;
      }
    }
    if (echoed < queued) {
      throw new EchoError(
        `the server closed the connection after echoing ${echoed} of ${queued} bytes`,
      );
    }
  })();

  // If one task fails, Promise.all rejects at once; runConnection then closes
  // the connection, which ends the other task's wait too.
  await Promise.all([writing, reading]);
}

/** Half-close after the last echo and expect the server to close: no stray bytes. */
async function goodbye(c: LoadConnection, buffer: Uint8Array) {
  await c.conn.closeWrite();
  c.waitingFor = "the server to close the connection";
  const n = await c.read(buffer);
  if (n !== null) throw new EchoError(`after the last echo the server sent ${n} more bytes`);
}

/** "WHERE: got 0x5a, expected 0xa5". */
function mismatch(where: string, got: number, expected: number): string {
  const hex = (b: number) => `0x${b.toString(16).padStart(2, "0")}`;
  return `${where}: got ${hex(got)}, expected ${hex(expected)}`;
}

/** 1234567 as "1,234,567". */
function grouped(value: number, digits = 0): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** "1 connection", "10 connections". */
function plural(count: number, word: string): string {
  return `${grouped(count)} ${word}${count === 1 ? "" : "s"}`;
}

/**
 * A one-line status for a terminal, to redraw in place (`\r`) while a run
 * goes on: a progress bar, how far along, the rate so far and the errors.
 *
 * @param options the run
 * @param stats its counters so far
 * @param now the current `performance.now()`
 * @example
 * ```ts
 * import { formatProgress, LoadStats } from "./load.ts";
 * const stats = new LoadStats();
 * const options = {
 *   host: "127.0.0.1", port: 65409, lesson: 9, connections: 1, size: 64, timeoutMs: 10_000,
 *   mode: "ping-pong" as const, messages: 100,
 * };
 * stats.startedAt = 0;
 * stats.roundTrips = 25;
 * formatProgress(options, stats, 10);
 * // "[#####...............]  25%  25/100 round trips  2,500/s  0 errors"
 * ```
 */
export function formatProgress(
  options: LoadOptions,
  stats: LoadStats,
  now: number = performance.now(),
): string {
  if (Number.isNaN(stats.startedAt)) {
    return `connecting: ${stats.connected}/${options.connections}`;
  }
  const seconds = Math.max(now - stats.startedAt, 1) / 1000;
  const errors = plural(stats.errorCount, "error");
  let done: number;
  let detail: string;
  if (options.mode === "ping-pong") {
    const total = options.connections * options.messages;
    done = stats.roundTrips / total;
    detail = `${grouped(stats.roundTrips)}/${grouped(total)} round trips  ` +
      `${grouped(stats.roundTrips / seconds)}/s`;
  } else {
    done = seconds / options.seconds;
    detail = `${grouped(Math.min(seconds, options.seconds), 1)}/${options.seconds} s  ` +
      `${grouped(stats.bytes / 1e6 / seconds, 1)} MB/s`;
  }
  const width = 20;
  const filled = Math.round(Math.min(1, done) * width);
  const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
  const percent = `${Math.floor(Math.min(1, done) * 100)}%`.padStart(4);
  return `${bar} ${percent}  ${detail}  ${errors}`;
}

/**
 * The summary of a finished run, as lines: what ran, how long, round trips
 * per second, MB/s (1 MB = 10^6 bytes, one way), p50/p99 latency, and the
 * errors, each on its own line.
 *
 * @param options the run
 * @param stats its final counters
 * @example
 * ```ts
 * import { formatReport, LoadStats } from "./load.ts";
 * const stats = new LoadStats();
 * const options = {
 *   host: "127.0.0.1", port: 65409, lesson: 9, connections: 1, size: 64, timeoutMs: 10_000,
 *   mode: "ping-pong" as const, messages: 1,
 * };
 * formatReport(options, stats)[0];
 * // "ping-pong    1 connection × 1 message × 64 bytes, every byte checked"
 * ```
 */
export function formatReport(options: LoadOptions, stats: LoadStats): string[] {
  const ms = stats.elapsedMs;
  const perSecond = (count: number) => ms > 0 ? count / (ms / 1000) : 0;
  const connections = plural(options.connections, "connection");
  const millis = (value: number) => `${value.toFixed(value < 10 ? 3 : 1)} ms`;
  const lines = options.mode === "ping-pong"
    ? [
      `ping-pong    ${connections} × ${plural(options.messages, "message")} × ` +
      `${plural(options.size, "byte")}, every byte checked`,
      `time         ${ms.toFixed(1)} ms`,
      `round trips  ${grouped(stats.roundTrips)} (${grouped(perSecond(stats.roundTrips))}/s)`,
    ]
    : [
      `stream       ${connections} for ${options.seconds} s, writes of ` +
      `${plural(options.size, "byte")}, every byte checked`,
      `time         ${ms.toFixed(1)} ms`,
      `round trips  ${grouped(stats.roundTrips)} writes echoed ` +
      `(${grouped(perSecond(stats.roundTrips))}/s)`,
    ];
  lines.push(`throughput   ${grouped(perSecond(stats.bytes) / 1e6, 2)} MB/s each way`);
  lines.push(
    stats.latency.count === 0
      ? "latency      -"
      : `latency      p50 ${millis(stats.latency.percentile(50))}, ` +
        `p99 ${millis(stats.latency.percentile(99))}, max ${millis(stats.latency.max)}` +
        (options.mode === "stream" ? " (from a write to the end of its echo)" : ""),
  );
  lines.push(`errors       ${stats.errorCount}`);
  for (const error of stats.errors) lines.push(`  ${error}`);
  if (stats.errorCount > stats.errors.length) {
    lines.push(`  ... and ${stats.errorCount - stats.errors.length} more`);
  }
  return lines;
}
