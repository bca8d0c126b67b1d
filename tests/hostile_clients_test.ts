/**
 * Servers 02-07 against clients that try to stop, stall or grow them: resets
 * before accept, more connections than file descriptors, clients that send
 * but never read, and (lesson 07) a store, a log and replies that must stay
 * bounded. Each test ends by checking that an ordinary client is still served.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { crc32 } from "node:zlib";
import { writeAll } from "../lib/io.ts";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  rawConnect,
  readExactly,
  readToEnd,
  resetConnections,
  sleep,
} from "./_helpers.ts";

/** A lesson 06 frame: a 4-byte big-endian length, then the bytes. */
function frame(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

/** A lesson 07 request, built from the README's wire format (not lib/). */
function request(body: unknown): Uint8Array {
  const bytes = encode(JSON.stringify(body));
  const out = new Uint8Array(16 + bytes.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x12345678);
  view.setUint32(4, 1);
  view.setUint32(8, bytes.length);
  view.setUint32(12, crc32(bytes));
  out.set(bytes, 16);
  return out;
}

/** Reads one lesson 07 message: its type, its body's JSON text and the parsed body. */
async function readMessage(conn: Deno.Conn) {
  const header = new DataView((await readExactly(conn, 16)).buffer);
  assertEquals(header.getUint32(0), 0x12345678, "magic");
  const body = await readExactly(conn, header.getUint32(8));
  assertEquals(header.getUint32(12), crc32(body), "crc");
  return { type: header.getUint32(4), text: decode(body), body: JSON.parse(decode(body)) };
}

/** Sends one request on a new connection and returns the answer's body. */
async function call07(port: number, body: unknown) {
  const conn = await rawConnect(port);
  try {
    await writeAll(conn, request(body));
    return await readMessage(conn);
  } finally {
    closeRaw(conn);
  }
}

/** One ordinary exchange with each lesson's server: what is sent, and the exact answer. */
const exchanges: Record<number, { send: Uint8Array; answer: string }> = {
  2: { send: encode("ping"), answer: "ping" },
  3: { send: encode("ping"), answer: "PING" },
  5: { send: encode("ping\n/bye\n"), answer: "1: gnip\nbye\n" },
};

/** Reads up to and including the first LF (at most 1 KiB, 5 s). */
async function readLine(conn: Deno.Conn): Promise<string> {
  let text = "";
  while (!text.includes("\n") && text.length < 1024) {
    text += decode(await readExactly(conn, 1, 5_000));
  }
  return text;
}

/** True if the server gives an ordinary client the right answer. */
async function served(lesson: number, port: number): Promise<boolean> {
  const conn = await rawConnect(port).catch(() => undefined);
  if (conn === undefined) return false; // refused: nobody is listening any more
  try {
    if (lesson === 4) {
      // The server answers at once and then waits for us to close.
      return /^you are 127\.0\.0\.1:\d+, I am 127\.0\.0\.1:\d+\n$/.test(await readLine(conn));
    }
    if (lesson === 6) {
      await writeAll(conn, frame(encode("ping")));
      await conn.closeWrite();
      const reply = decode(await readToEnd(conn, 5_000));
      return reply.includes("frame 1: 4 bytes, sha256 ") && !reply.includes("error");
    }
    if (lesson === 7) {
      await writeAll(conn, request({ op: "delete", key: "nothing" }));
      return (await readMessage(conn)).text === '{"ok":true,"deleted":false}';
    }
    await writeAll(conn, exchanges[lesson].send);
    await conn.closeWrite();
    return decode(await readToEnd(conn, 5_000)) === exchanges[lesson].answer;
  } catch {
    return false;
  } finally {
    closeRaw(conn);
  }
}

const task = (lesson: number) => `lesson0${lesson}-server`;

for (const lesson of [2, 3, 4, 5, 6, 7]) {
  Deno.test(`lesson 0${lesson}: connections reset before accept do not stop the server`, async () => {
    // Lesson 04's idle clients stay until they close; everyone else is quick.
    await using server = await LessonServer.start(task(lesson), ["--idle-timeout", "5"]);
    if (lesson === 7) await call07(server.port, { op: "set", key: "kept", value: 42 });
    // Reset connections in bursts: some reach accept already reset ("not connected").
    const floodStart = Date.now();
    for (let i = 0; i < 5; i++) await resetConnections(server.port, 200);
    const floodSeconds = (Date.now() - floodStart) / 1000;
    assert(await served(lesson, server.port), "a good client after the resets was not served");
    assertEquals(await server.waitForExit(200), false, "the server exited");
    assert(await server.waitForLine(/^could not accept a connection: /), "no reset reached accept");
    // The log stays readable: at most 20 notes a second (lib/log.ts), the rest only counted.
    const notes = server.lines.filter((line) => line.startsWith("could not accept a connection: "));
    const allowed = 20 * (Math.ceil(floodSeconds) + 2);
    assert(notes.length <= allowed, `${notes.length} notes of failed accepts (at most ${allowed})`);
    if (lesson === 7) {
      const kept = await call07(server.port, { op: "get", key: "kept" });
      assertEquals(kept.text, '{"ok":true,"value":42}', "the store was lost");
    }
    assertEquals(server.stderr, "");
  });
}

for (const lesson of [4, 5, 6, 7]) {
  Deno.test(`lesson 0${lesson}: more connections than file descriptors`, async () => {
    // 128 descriptors, and the default --max-connections (500) is above that:
    // the server must notice "too many open files", lower its limit and live.
    await using server = await LessonServer.start(task(lesson), [], 20_000, { maxOpenFiles: 128 });
    // Deno opens a few descriptors of its own in its first half second (signal
    // handling); if there are none left then, Deno itself panics, whatever
    // the program does. So the crowd comes a moment after the start.
    await sleep(1_500);
    const crowd: Deno.TcpConn[] = [];
    try {
      // The kernel completes these connections whether or not the server accepts them.
      for (let i = 0; i < 150; i++) crowd.push(await rawConnect(server.port));
      const ranOut = await server.waitForLine(
        /^out of file descriptors with \d+ connections open: serving at most \d+/,
      );
      await sleep(1_000);
      assertEquals(await server.waitForExit(100), false, `the server died: ${server.stderr}`);
      assert(ranOut, "the server never ran out of descriptors: the test proves nothing");
    } finally {
      for (const conn of crowd) closeRaw(conn);
    }
    // Once the crowd has gone, places free up and an ordinary client is served.
    let ok = false;
    for (let attempt = 0; attempt < 40 && !ok; attempt++) {
      ok = await served(lesson, server.port);
      if (!ok) await sleep(250);
    }
    assert(ok, "no client was served after the crowd left");
    assertEquals(await server.waitForExit(100), false, "the server died");
    assertEquals(server.stderr, "");
  });
}

/** What each busy server tells a client over --max-connections, exactly. */
const busyReplies: Record<number, Uint8Array> = {
  4: encode("server busy\n"),
  5: encode("error: server busy\n"),
  6: frame(encode("error: server busy")),
};

for (const lesson of [4, 5, 6, 7]) {
  Deno.test(`lesson 0${lesson}: a client over --max-connections is told the server is busy`, async () => {
    await using server = await LessonServer.start(task(lesson), ["--max-connections", "2"]);
    const held = [await rawConnect(server.port), await rawConnect(server.port)];
    try {
      if (lesson === 4) { for (const conn of held) await readExactly(conn, 10); // accepted
       } else assert(await server.waitForLineCount(3), "the two clients were not accepted");
      const third = await rawConnect(server.port);
      try {
        if (lesson === 7) {
          const answer = await readMessage(third);
          assertEquals([answer.type, answer.body.ok, answer.body.error], [3, false, "server-busy"]);
          assertEquals(await readToEnd(third, 5_000), new Uint8Array(), "then EOF");
        } else {
          assertEquals(await readToEnd(third, 5_000), busyReplies[lesson]);
        }
      } finally {
        closeRaw(third);
      }
      assert(await server.waitForLine("turned away a client: 2 connections open (the limit)"));
    } finally {
      for (const conn of held) closeRaw(conn);
    }
    let ok = false;
    for (let attempt = 0; attempt < 20 && !ok; attempt++) {
      ok = await served(lesson, server.port);
      if (!ok) await sleep(100);
    }
    assert(ok, "no client was served after the two closed");
  });
}

/**
 * What a client that never reads sends: enough that the answers fill its
 * receive buffer and the server's send buffer (several MB on loopback).
 */
async function floodFor(lesson: number, port: number): Promise<Uint8Array> {
  const mib = 1024 * 1024;
  switch (lesson) {
    case 2:
    case 3:
      return new Uint8Array(64 * mib).fill(0x61); // "aaaa…", echoed or uppercased
    case 5:
      return encode(("x".repeat(1023) + "\n").repeat(64 * 1024)); // 64 MiB of lines
    case 6: {
      // 100-byte frames, each answered with ~100 bytes: 48 MiB of answers.
      const one = frame(new Uint8Array(100));
      const all = new Uint8Array(one.length * 500_000);
      for (let i = 0; i < 500_000; i++) all.set(one, i * one.length);
      return all;
    }
    default: {
      // Lesson 07: one 512 KiB value, then `get`s of it (each ~40 bytes in, 512 KiB out).
      assertEquals(
        (await call07(port, { op: "set", key: "big", value: "v".repeat(512 * 1024) })).text,
        '{"ok":true}',
      );
      const get = request({ op: "get", key: "big" });
      const all = new Uint8Array(get.length * 200);
      for (let i = 0; i < 200; i++) all.set(get, i * get.length);
      return all;
    }
  }
}

for (const lesson of [2, 3, 5, 6, 7]) {
  Deno.test(`lesson 0${lesson}: a client that sends but never reads is closed`, async () => {
    await using server = await LessonServer.start(task(lesson), ["--idle-timeout", "1"]);
    const hostile = await rawConnect(server.port);
    try {
      const flood = await floodFor(lesson, server.port);
      // Never read. This write stops when the server stops reading, and fails
      // when the server closes the connection.
      const writing = writeAll(hostile, flood).catch(() => {});
      assert(
        await server.waitForLine(
          /timed out after 1 s writing to the client: it is not reading$/,
          20_000,
        ),
        "the server did not give up on the client that does not read",
      );
      await writing;
      // Lessons 02 and 03 serve one client at a time: only now can the next one be served.
      assert(await served(lesson, server.port), "the next client was not served");
    } finally {
      closeRaw(hostile);
    }
    assertEquals(server.stderr, "");
  });
}

Deno.test("lesson 07: --max-store-bytes counts keys and values, and store-full says so", async () => {
  await using server = await LessonServer.start(task(7), ["--max-store-bytes", "10000"]);
  const conn = await rawConnect(server.port);
  try {
    const ask = async (body: unknown) => {
      await writeAll(conn, request(body));
      return (await readMessage(conn)).body;
    };
    // An entry counts its key's bytes and its value's JSON text: "k1" and
    // "xxx…" with its quotes are 2 + 4002 = 4004 bytes.
    assertEquals(await ask({ op: "set", key: "k1", value: "x".repeat(4000) }), { ok: true });
    assertEquals(await ask({ op: "set", key: "k2", value: "y".repeat(4000) }), { ok: true });
    const full = await ask({ op: "set", key: "k3", value: "z".repeat(4000) });
    assertEquals([full.ok, full.error], [false, "store-full"]);
    assertEquals(
      full.message,
      "the store holds 8008 of at most 10000 bytes: no room for 4004 more",
    );
    // Replacing a value gives its bytes back; so does delete.
    assertEquals(await ask({ op: "set", key: "k1", value: "small" }), { ok: true });
    assertEquals(await ask({ op: "set", key: "k3", value: "z".repeat(4000) }), { ok: true });
    assertEquals(await ask({ op: "delete", key: "k2" }), { ok: true, deleted: true });
    // 3000 empty objects are 9001 bytes of JSON (parsed, they would take far more).
    const objects = Array.from({ length: 3000 }, () => ({}));
    const tooBig = await ask({ op: "set", key: "o", value: objects });
    assertEquals(
      tooBig.message,
      "the store holds 4013 of at most 10000 bytes: no room for 9002 more",
    );
    assertEquals(await ask({ op: "delete", key: "k3" }), { ok: true, deleted: true });
    assertEquals(await ask({ op: "set", key: "o", value: objects }), { ok: true });
    assertEquals(await ask({ op: "get", key: "o" }), { ok: true, value: objects });
  } finally {
    closeRaw(conn);
  }
  assertEquals(server.stderr, "");
});

Deno.test("lesson 07: long keys and values are shortened in the log", async () => {
  await using server = await LessonServer.start(task(7));
  const key = "k".repeat(300);
  const answer = await call07(server.port, { op: "set", key, value: "v".repeat(5000) });
  assertEquals(answer.text, '{"ok":true}');
  // The body's JSON is 19 + 300 + 11 + 5000 + 2 = 5332 bytes; the log shows its first 100 characters.
  const logged = `{"op":"set","key":"${"k".repeat(81)}… (5332 bytes) -> {"ok":true}`;
  assert(await server.waitForLine(/ -> \{"ok":true\}$/));
  assert(server.lines.some((line) => line.endsWith(logged)), "not shortened");
  const missing = await call07(server.port, { op: "get", key: "m".repeat(200) });
  assertEquals(missing.body.message, `no value for key "${"m".repeat(99)}… (202 bytes)`);
  assert(server.lines.every((line) => line.length < 300), "a log line over 300 characters");
});

Deno.test("lesson 07: a keys answer is cut to fit the body limit", async () => {
  await using server = await LessonServer.start(task(7), ["--max-body", "2000"]);
  const keys = Array.from({ length: 10 }, (_, i) => `${i}`.padEnd(500, "k"));
  for (const key of [...keys].reverse()) {
    assertEquals((await call07(server.port, { op: "set", key, value: 1 })).text, '{"ok":true}');
  }
  const answer = await call07(server.port, { op: "keys" });
  assertEquals(answer.type, 2);
  // {"ok":true,"keys":[],"truncated":true} and 503 bytes a key: three keys fit in 2000 bytes.
  assertEquals(answer.body, { ok: true, keys: keys.slice(0, 3), truncated: true });
  assert(encode(answer.text).length <= 2000, `${encode(answer.text).length} bytes`);
  assert(
    await server.waitForLine(/: \{"op":"keys"\} -> \{"ok":true,"keys":\["0k+… \(1\d{3} bytes\)$/),
  );
  assertStringIncludes((await call07(server.port, { op: "get", key: keys[9] })).text, '"value":1');
});

/**
 * One ordinary exchange for the slot test: sends a line, half-closes, reads
 * to the end. Lesson 19 is a proxy in front of lesson 05, so the same line works.
 */
async function oneLine(port: number): Promise<string> {
  const conn = await rawConnect(port);
  try {
    await writeAll(conn, encode("hi\n"));
    await conn.closeWrite();
    return decode(await readToEnd(conn, 5_000));
  } finally {
    closeRaw(conn);
  }
}

for (const lesson of [5, 8, 12, 15, 16, 19]) {
  const name = `lesson${String(lesson).padStart(2, "0")}-server`;
  Deno.test(`${name}: a client that connects and closes at once leaves no busy slots`, async () => {
    // Lesson 19 relays to a lesson 05 server.
    await using upstream = lesson === 19 ? await LessonServer.start("lesson05-server") : undefined;
    const args = ["--max-connections", "2"];
    if (upstream) args.push("--to", `127.0.0.1:${upstream.port}`);
    await using server = await LessonServer.start(name, args);
    // One churner: connect, close, again, one socket at a time. It holds at
    // most one place, so with 2 places an ordinary client always fits.
    let churning = true;
    const churner = (async () => {
      while (churning) closeRaw(await rawConnect(server.port));
    })();
    let busy = 0;
    try {
      for (let i = 0; i < 100; i++) {
        const reply = await oneLine(server.port);
        // The proxy closes a client over the limit without a word.
        if (reply.includes("busy") || (lesson === 19 && reply !== "1: ih\n")) busy++;
      }
    } finally {
      churning = false;
      await churner;
    }
    assertEquals(busy, 0, `${busy} of 100 ordinary clients were told "busy"`);
  });
}

for (
  const name of [4, 5, 6, 7, 13, 15, 16].map((n) => `lesson${String(n).padStart(2, "0")}-server`)
) {
  Deno.test(`${name}: a crowd the moment it listens, with few descriptors, does not crash Deno`, async () => {
    // Deno sets up its signal handling lazily and needs a descriptor for it:
    // if the crowd took them all first, Deno 2.9 panicked ("Too many open
    // files" in ext/signals). lib's listen and acceptConnections set it up first.
    await using server = await LessonServer.start(name, [], 20_000, { maxOpenFiles: 128 });
    const tries = await Promise.allSettled(
      Array.from({ length: 200 }, () => rawConnect(server.port)),
    );
    const crowd = tries.flatMap((t) => t.status === "fulfilled" ? [t.value] : []);
    try {
      await sleep(1_500); // Deno's own lazy setup comes within its first second
      assertEquals(await server.waitForExit(100), false, `the server died: ${server.stderr}`);
    } finally {
      crowd.forEach(closeRaw);
    }
    assert(!server.stderr.includes("panicked"), server.stderr);
  });
}

for (const lesson of [2, 3, 4, 5, 6, 7, 15, 16, 19]) {
  const name = `lesson${String(lesson).padStart(2, "0")}-server`;
  Deno.test(`${name}: 2,000 connections opened and closed make a few hundred log lines at most`, async () => {
    // A slow terminal draws ~30 KB/s: one line per connection would make a
    // churning client the server's main job (lib/log.ts peerLog).
    await using upstream = lesson === 19 ? await LessonServer.start("lesson05-server") : undefined;
    const args = upstream ? ["--to", `127.0.0.1:${upstream.port}`] : [];
    await using server = await LessonServer.start(name, args);
    const before = server.lines.length;
    const start = Date.now();
    for (let i = 0; i < 2_000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => rawConnect(server.port)));
      batch.forEach(closeRaw);
    }
    const seconds = (Date.now() - start) / 1000;
    await server.waitForQuiet(1_200, 15_000);
    const lines = server.lines.length - before;
    // peerLog: 50 lines a second, plus serveEach's notes (20 a second) and the counts.
    const allowed = 75 * (Math.ceil(seconds) + 2);
    assert(lines <= allowed, `${lines} log lines for 2,000 connections in ${seconds} s`);
    assert(lines > 0, "no log line at all: the test proves nothing");
  });
}
