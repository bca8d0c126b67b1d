/**
 * lib/load.ts, the parts that bench/echo.ts needs: histograms merged across
 * load processes, ping-pong for a time, and a start gate after connecting.
 */
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { LatencyHistogram, type LoadOptions, LoadStats, runLoad } from "../lib/load.ts";
import { closeQuietly } from "../lib/net.ts";

Deno.test("LatencyHistogram: merging two halves gives the percentiles of the whole", () => {
  const whole = new LatencyHistogram();
  const odd = new LatencyHistogram();
  const even = new LatencyHistogram();
  for (let i = 1; i <= 1000; i++) {
    const ms = i / 10; // 0.1 ms to 100 ms
    whole.record(ms);
    (i % 2 ? odd : even).record(ms);
  }
  const merged = new LatencyHistogram();
  merged.merge(odd);
  merged.merge(JSON.parse(JSON.stringify(even))); // as it comes from another process
  assertEquals(merged.count, 1000);
  assertEquals(merged.max, 100);
  for (const p of [1, 50, 90, 99, 99.9, 100]) {
    assertEquals(merged.percentile(p), whole.percentile(p), `p${p}`);
  }
  // And the buckets put them where they belong: p99 of 0.1..100 ms is 99 ms, ±1%.
  assertAlmostEquals(merged.percentile(99), 99, 1);
});

Deno.test("LatencyHistogram: toJSON keeps only the buckets in use; empty stays empty", () => {
  const empty = new LatencyHistogram();
  assertEquals(empty.toJSON(), { buckets: [], max: null });
  const copy = new LatencyHistogram();
  copy.merge(empty.toJSON());
  assertEquals(copy.count, 0);
  assert(Number.isNaN(copy.max) && Number.isNaN(copy.percentile(50)));

  const three = new LatencyHistogram();
  three.record(5);
  three.record(5);
  three.record(7);
  const data = three.toJSON();
  assertEquals(data.buckets.length, 2);
  assertEquals(data.buckets.reduce((sum, [, count]) => sum + count, 0), 3);
  assertEquals(data.max, 7);
});

Deno.test("LatencyHistogram: merge rejects data that is not a histogram", () => {
  const histogram = new LatencyHistogram();
  assertThrows(() => histogram.merge({ buckets: [[5000, 1]], max: 1 }), RangeError);
  assertThrows(() => histogram.merge({ buckets: [[3, 1], [4, -1]], max: 1 }), RangeError);
  assertEquals(histogram.count, 0);
});

/** A loopback echo server that counts what it received; close() ends everything. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const served: Promise<void>[] = [];
  const counts = { accepted: 0, bytes: 0 };
  const accepting = (async () => {
    for await (const conn of listener) {
      counts.accepted++;
      conns.add(conn);
      served.push((async () => {
        const buffer = new Uint8Array(4096);
        try {
          let n: number | null;
          while ((n = await conn.read(buffer)) !== null) {
            counts.bytes += n;
            let written = 0;
            while (written < n) written += await conn.write(buffer.subarray(written, n));
          }
        } catch {
          // the client went away
        } finally {
          conns.delete(conn);
          closeQuietly(conn);
        }
      })());
    }
  })();
  return {
    port: listener.addr.port,
    counts,
    async close() {
      closeQuietly(listener);
      await accepting.catch(() => {});
      for (const conn of conns) closeQuietly(conn);
      await Promise.all(served);
    },
  };
}

const base = { host: "127.0.0.1", lesson: 9, size: 64, timeoutMs: 5000 };

Deno.test("runLoad: ping-pong with seconds stops after that time, messages left over", async () => {
  const server = echoServer();
  try {
    const options: LoadOptions = {
      ...base,
      port: server.port,
      connections: 3,
      mode: "ping-pong",
      messages: Number.MAX_SAFE_INTEGER,
      seconds: 0.3,
    };
    const stats = await runLoad(options);
    assertEquals(stats.errorCount, 0, stats.errors.join("\n"));
    assert(stats.roundTrips > 0);
    assertEquals(stats.bytes, stats.roundTrips * 64);
    assertEquals(stats.latency.count, stats.roundTrips);
    assertEquals(stats.roundTripsByConnection.length, 3);
    assertEquals(stats.roundTripsByConnection.reduce((a, b) => a + b), stats.roundTrips);
    // A message is sent only before the time is up, so traffic ran close to 0.3 s.
    assert(stats.elapsedMs >= 270, `ran ${stats.elapsedMs} ms`);
    assertEquals(server.counts.bytes, stats.bytes); // the server got exactly what was checked
  } finally {
    await server.close();
  }
});

Deno.test("runLoad: beforeTraffic runs with every connection up and no byte sent", async () => {
  const server = echoServer();
  try {
    const stats = new LoadStats();
    let seen: { connected: number; bytes: number; roundTrips: number } | undefined;
    let releasedAt = NaN;
    const options: LoadOptions = {
      ...base,
      port: server.port,
      connections: 4,
      mode: "ping-pong",
      messages: 5,
      beforeTraffic: async () => {
        // Give a byte sent too early time to reach the server.
        await new Promise((resolve) => setTimeout(resolve, 100));
        seen = {
          connected: stats.connected,
          bytes: server.counts.bytes,
          roundTrips: stats.roundTrips,
        };
        releasedAt = performance.now();
      },
    };
    await runLoad(options, stats);
    assertEquals(seen, { connected: 4, bytes: 0, roundTrips: 0 });
    assert(stats.startedAt >= releasedAt, "the traffic waited for beforeTraffic");
    assertEquals(stats.roundTrips, 20);
    assertEquals(stats.roundTripsByConnection, [5, 5, 5, 5]);
    assertEquals(server.counts.bytes, 20 * 64);
  } finally {
    await server.close();
  }
});
