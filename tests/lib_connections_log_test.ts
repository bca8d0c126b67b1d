import { assert, assertEquals } from "@std/assert";
import { assertSpyCall, assertSpyCalls, spy } from "@std/testing/mock";
import { IdleTracker } from "../lib/connections.ts";
import { ThrottledLog } from "../lib/log.ts";
import { sleep } from "./_helpers.ts";

Deno.test("IdleTracker: one timer, a coarse clock, idle items handed over, never early", async () => {
  const idle: string[] = [];
  const tracker = new IdleTracker<{ lastActive: number; name: string }>({
    idleTimeoutMs: 200,
    tickMs: 20,
    onIdle: (item) => {
      idle.push(item.name);
      tracker.delete(item);
    },
  });
  try {
    const quiet = { lastActive: -1, name: "quiet" };
    const busy = { lastActive: -1, name: "busy" };
    tracker.add(quiet);
    tracker.add(busy);
    assertEquals([quiet.lastActive, tracker.size], [tracker.now, 2]);
    const started = Date.now();
    while (Date.now() - started < 500) {
      busy.lastActive = tracker.now; // activity: one assignment
      await sleep(20);
      if (idle.length > 0) break;
    }
    assertEquals(idle, ["quiet"]);
    assert(Date.now() - started >= 200, "not before the timeout");
    assert(tracker.now > 0, "the clock advances");
    assertEquals([...tracker].map((item) => item.name), ["busy"]);
  } finally {
    tracker.stop();
  }
});

Deno.test("IdleTracker: the tick defaults to a quarter of the timeout, at most 1 s", () => {
  const short = new IdleTracker({ idleTimeoutMs: 1000, onIdle: () => {} });
  const long = new IdleTracker({ idleTimeoutMs: 300_000, onIdle: () => {} });
  short.stop();
  long.stop();
  assertEquals([short.tickMs, long.tickMs], [250, 1000]);
});

Deno.test("ThrottledLog: prints at once under the limit, then summarises", async () => {
  const lines: string[] = [];
  const log = new ThrottledLog({ maxLinesPerSecond: 3, write: (line) => lines.push(line) });
  log.status("count: 1");
  log.event("something happened");
  log.status("count: 2");
  assertEquals(lines, ["count: 1", "something happened", "count: 2"]);
  log.status("count: 3"); // over the limit: held back
  log.event("dropped 1");
  log.event("dropped 2");
  log.status("count: 4"); // replaces count: 3
  assertEquals(lines.length, 3);
  log.flush();
  assertEquals(lines.slice(3), [
    "(2 more events not shown: at most 3 lines/s)",
    "count: 4",
  ]);
  log.flush(); // nothing more
  assertEquals(lines.length, 5);

  // Held-back lines also come out by themselves when the second is over.
  const timed: string[] = [];
  const log2 = new ThrottledLog({ maxLinesPerSecond: 1, write: (line) => timed.push(line) });
  log2.status("a");
  log2.status("b");
  assertEquals(timed, ["a"]);
  await sleep(1200);
  assertEquals(timed, ["a", "b"]);
  log2.flush();
});

Deno.test("ThrottledLog: the held-back lines are written by its own timer when the second is over", async () => {
  // A spy records every call of `write`: what was written, and when.
  const write = spy((_line: string) => {});
  const log = new ThrottledLog({ maxLinesPerSecond: 1, write });
  log.event("first");
  log.event("second"); // over the limit: counted, not written
  log.status("now: 2");
  assertSpyCalls(write, 1);
  assertSpyCall(write, 0, { args: ["first"] });
  await sleep(1_300); // no flush(): the log's timer must do it
  assertSpyCalls(write, 3);
  assertSpyCall(write, 1, { args: ["(1 more event not shown: at most 1 lines/s)"] });
  assertSpyCall(write, 2, { args: ["now: 2"] });
  log.flush(); // nothing left: no more calls, and no timer left behind
  assertSpyCalls(write, 3);
});

Deno.test("IdleTracker: onIdle gets each quiet item exactly once", async () => {
  type Item = { lastActive: number; name: string };
  const trackers: IdleTracker<Item>[] = [];
  const onIdle = spy((item: Item) => trackers[0].delete(item));
  const tracker = new IdleTracker<Item>({ idleTimeoutMs: 100, tickMs: 10, onIdle });
  trackers.push(tracker);
  try {
    const a = { lastActive: -1, name: "a" };
    tracker.add(a);
    await sleep(400); // several ticks after the timeout
    assertSpyCalls(onIdle, 1);
    assertSpyCall(onIdle, 0, { args: [a] });
  } finally {
    tracker.stop();
  }
});
