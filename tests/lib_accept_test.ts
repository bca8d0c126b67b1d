import { assert, assertEquals } from "@std/assert";
import { acceptConnections, ConnectionLimit, isOutOfResources, serveEach } from "../lib/accept.ts";
import { closeRaw, decode, rawConnect, readToEnd, resetConnections } from "./_helpers.ts";

Deno.test("acceptConnections skips connections reset before accept, at once", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  // 200 clients connect and reset while nobody accepts: they wait in the queue.
  await resetConnections(port, 200);
  const good = await rawConnect(port);
  const errors: string[] = [];
  const start = performance.now();
  try {
    for await (const conn of acceptConnections(listener, { onError: (l) => errors.push(l) })) {
      const mine = conn.remoteAddr.port === (good.localAddr as Deno.NetAddr).port;
      conn.close();
      if (mine) break;
    }
    // No sleeping per failed accept: 200 resets must not delay the good client.
    const waited = performance.now() - start;
    assert(waited < 2000, `the good client waited ${waited} ms behind the resets`);
    assert(errors.length > 0, "the resets did not reach accept: the test proves nothing");
    assert(errors.every((line) => line.startsWith("could not accept a connection: ")), errors[0]);
  } finally {
    closeRaw(good);
    listener.close();
  }
});

Deno.test("acceptConnections ends when the listener is closed", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    let count = 0;
    for await (const conn of acceptConnections(listener)) {
      conn.close();
      count++;
    }
    return count;
  })();
  listener.close();
  assertEquals(await loop, 0);
});

Deno.test("isOutOfResources knows EMFILE and ENFILE from a reset", () => {
  assert(isOutOfResources(new Error("Too many open files (os error 24)")));
  assert(isOutOfResources(new Error("Too many open files in system (os error 23)")));
  assert(!isOutOfResources(new Deno.errors.NotConnected("Transport endpoint (os error 107)")));
  assert(!isOutOfResources("not an error"));
});

Deno.test("ConnectionLimit counts places and keeps descriptors free after EMFILE", () => {
  const limit = new ConnectionLimit(1000);
  for (let i = 0; i < 100; i++) assert(limit.tryOpen());
  assertEquals(
    limit.outOfDescriptors(),
    "out of file descriptors with 100 connections open: serving at most 84 at once from now on " +
      "(raise the limit with ulimit -n)",
  );
  assertEquals(limit.max, 84);
  assertEquals(limit.outOfDescriptors(), undefined, "said once, not on every failed accept");
  assert(!limit.tryOpen());
  for (let i = 0; i < 17; i++) limit.close();
  assert(limit.tryOpen());
  assert(!limit.tryOpen());
});

Deno.test("serveEach serves clients at once and turns away those over the limit", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const log: string[] = [];
  let release = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  const serving = serveEach(listener, async (conn) => {
    await held; // keep the first two clients open
    conn.close();
  }, { maxConnections: 2, log: (line) => log.push(line) });
  const first = await rawConnect(port);
  const second = await rawConnect(port);
  const third = await rawConnect(port);
  try {
    assertEquals(decode(await readToEnd(third)), "server busy\n");
    assertEquals(log, ["turned away a client: 2 connections open (the limit)"]);
  } finally {
    release();
    for (const conn of [first, second, third]) closeRaw(conn);
    listener.close();
    await serving;
  }
});

Deno.test("ConnectionLimit.acquire: a place given back within the wait goes to the waiting client", async () => {
  const limit = new ConnectionLimit(1);
  assertEquals(await limit.acquire(), true);
  const timer = setTimeout(() => limit.close(), 2); // the connection ends a moment later
  assertEquals(await limit.acquire(50), true);
  clearTimeout(timer);
  assertEquals(limit.open, 1, "the place changed hands");
  // Nobody gives one back: "busy" after the wait, and nothing is left waiting.
  const started = performance.now();
  assertEquals(await limit.acquire(20), false);
  assert(performance.now() - started >= 15, "it waited");
  limit.close();
  assertEquals(limit.open, 0);
});
