/**
 * Lesson 19: the tracing proxy, as a real process, in front of real lesson
 * servers and of test servers written here (so each edge case is exact).
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import net from "node:net";
import { test } from "./_checks.ts";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { closeQuietly } from "../lib/net.ts";
import { READ_TURNS } from "../lib/turns.ts";
import {
  LineRewriter,
  MAX_REWRITE_LINE,
  replaceBytes,
} from "../lessons/19-tracing-proxy/server.ts";
import {
  closedPort,
  closeRaw,
  decode,
  encode,
  LessonServer,
  randomBytes,
  rawConnect,
  readExactly,
  readToEnd,
  runTask,
  sleep,
} from "./_helpers.ts";

const MiB = 1024 * 1024;

/**
 * A test server on a free port: `handle` runs for each connection (which is
 * closed after it). Stops accepting and waits for every handler at the end.
 */
async function withUpstream(
  handle: (conn: Deno.TcpConn) => Promise<void>,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handlers: Promise<void>[] = [];
  const errors: unknown[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      handlers.push(
        handle(conn).catch((error) => void errors.push(error)).finally(() => closeQuietly(conn)),
      );
    }
  })();
  try {
    await body(listener.addr.port);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    await Promise.all(handlers);
  }
  if (errors.length > 0) throw errors[0];
}

/** Starts the proxy in front of 127.0.0.1:`port`. */
function proxy(port: number, args: string[] = []): Promise<LessonServer> {
  return LessonServer.start("lesson19-server", ["--to", `127.0.0.1:${port}`, ...args]);
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("lesson 19: replaceBytes and LineRewriter (units)", () => {
  const text = (bytes: Uint8Array) => decode(bytes);
  assertEquals(
    text(replaceBytes(encode("bob pays bob"), encode("bob"), encode("eve"))),
    "eve pays eve",
  );
  assertEquals(text(replaceBytes(encode("bobob"), encode("bob"), encode("x"))), "xob");
  assertEquals(text(replaceBytes(encode("bo"), encode("bob"), encode("x"))), "bo");
  const rewriter = new LineRewriter([[encode("bob"), encode("mallory")]]);
  // "bob" cut across two reads is still found: the rewriter frames lines first.
  assertEquals(rewriter.push(encode("pay bo")), []);
  assertEquals(rewriter.push(encode("b 10\nto b")).map(text), ["pay mallory 10\n"]);
  assertEquals(rewriter.end().map(text), ["to b"]);
  assertEquals([rewriter.changed, rewriter.grown], [1, 4]);
  // A "line" longer than the limit is passed on as it is: memory stays bounded.
  const long = new Uint8Array(MAX_REWRITE_LINE + 1).fill(0x62); // "bbbb…"
  assertEquals(rewriter.push(long).map((b) => b.length), [MAX_REWRITE_LINE + 1]);
  assertEquals(rewriter.end(), []);
  // Binary data (here a TLS record header) passes unchanged, and so does all that follows.
  const binary = new LineRewriter([[encode("bob"), encode("mallory")]]);
  assertEquals(binary.push(encode("bo")), []);
  const record = new Uint8Array([0x17, 0x03, 0x03, 0x62, 0x6f, 0x62]); // ..."bob"
  assertEquals(binary.push(record), [encode("bo"), record]);
  assertEquals(binary.push(encode("bob\n")).map(text), ["bob\n"]);
  assertEquals([binary.binary, binary.changed], [true, 0]);
});

test("lesson 19: the trace shows each chunk with its direction, a hex dump and a summary", async () => {
  await using upstream = await LessonServer.start("lesson07-server");
  await using server = await proxy(upstream.port);
  const client = await runTask("lesson07-client", ["--port", String(server.port), "keys"]);
  assertEquals([client.code, client.stdout], [0, '{"ok":true,"keys":[]}\n']);
  assert(await server.waitForLine(/^#1 {3}server → client/));
  const trace = server.lines.slice(2).map((line) => line.replace(/\d+\.\d ms/, "N ms"));
  assertMatch(trace[0], /^#1 127\.0\.0\.1:\d+ connected, relaying to 127\.0\.0\.1:\d+$/);
  assertEquals(trace.slice(1), [
    "#1 +N ms client → server 29 bytes",
    "  00000000  12 34 56 78 00 00 00 01  00 00 00 0d 89 69 9f 9b  |.4Vx.........i..|",
    '  00000010  7b 22 6f 70 22 3a 22 6b  65 79 73 22 7d           |{"op":"keys"}|',
    "#1 +N ms server → client 37 bytes",
    "  00000000  12 34 56 78 00 00 00 02  00 00 00 15 aa ad fa 6e  |.4Vx...........n|",
    '  00000010  7b 22 6f 6b 22 3a 74 72  75 65 2c 22 6b 65 79 73  |{"ok":true,"keys|',
    '  00000020  22 3a 5b 5d 7d                                    |":[]}|',
    "#1 +N ms client → server FIN: passing on the half-close",
    "#1 +N ms server → client FIN: passing on the half-close",
    "#1 closed after N ms",
    "#1   client → server 29 bytes in 1 write, then FIN",
    "#1   server → client 37 bytes in 1 write, then FIN",
  ]);
});

test("lesson 19: 16 MiB each way at once arrive byte for byte", async () => {
  const up = randomBytes(16 * MiB);
  const down = randomBytes(16 * MiB);
  let upstreamGot = "";
  await withUpstream(async (conn) => {
    const [received] = await Promise.all([
      readToEnd(conn),
      writeAll(conn, down).then(() => conn.closeWrite()),
    ]);
    upstreamGot = await sha256(received);
  }, async (port) => {
    await using server = await proxy(port, ["--quiet"]);
    const conn = await rawConnect(server.port);
    try {
      const [received] = await Promise.all([
        readToEnd(conn),
        writeAll(conn, up).then(() => conn.closeWrite()),
      ]);
      assertEquals(received.length, down.length);
      assertEquals(await sha256(received), await sha256(down));
    } finally {
      closeRaw(conn);
    }
    assert(
      await server.waitForLine(/^#1 {3}server → client 16777216 bytes in \d+ writes, then FIN$/),
    );
    assert(
      server.lines.some((l) =>
        /^#1 {3}client → server 16777216 bytes in \d+ writes, then FIN$/.test(l)
      ),
    );
  });
  assertEquals(upstreamGot, await sha256(up));
});

test("lesson 19: a half-close is passed on, both ways, and the other direction goes on", async () => {
  await withUpstream(async (conn) => {
    // Reads to EOF: only a relayed FIN ends this. Then answers, and half-closes.
    const request = decode(await readToEnd(conn, 5_000));
    await writeAll(conn, encode(`got ${JSON.stringify(request)} and then EOF\n`));
    await conn.closeWrite();
  }, async (port) => {
    await using server = await proxy(port);
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, encode("abc"));
      await conn.closeWrite();
      assertEquals(decode(await readToEnd(conn, 5_000)), 'got "abc" and then EOF\n');
    } finally {
      closeRaw(conn);
    }
    assert(await server.waitForLine("#1   server → client 23 bytes in 1 write, then FIN"));
    const lines = server.lines;
    assertEquals(lines.filter((l) => l.includes("FIN: passing on the half-close")).length, 2);
    assertStringIncludes(lines.join("\n"), "  00000000  61 62 63");
  });

  // The server half-closes first: the client sees EOF and can still send.
  await withUpstream(async (conn) => {
    await writeAll(conn, encode("hello, then EOF\n"));
    await conn.closeWrite();
    assertEquals(decode(await readToEnd(conn, 5_000)), "still here\n");
  }, async (port) => {
    await using server = await proxy(port, ["--quiet"]);
    const conn = await rawConnect(server.port);
    try {
      assertEquals(decode(await readToEnd(conn, 5_000)), "hello, then EOF\n");
      await writeAll(conn, encode("still here\n"));
      await conn.closeWrite();
    } finally {
      closeRaw(conn);
    }
    assert(await server.waitForLine("#1   client → server 11 bytes in 1 write, then FIN"));
  });
});

test("lesson 19: --split 1 leaves framed lessons correct (05, 07) and breaks lesson 05 --naive", async (t) => {
  await t.step("lesson 05, framed", async () => {
    await using upstream = await LessonServer.start("lesson05-server");
    await using server = await proxy(upstream.port, ["--split", "1", "--quiet"]);
    const client = await runTask("lesson05-client", [
      "--port",
      String(server.port),
      "--message",
      "Hello",
      "--message",
      "wörld 🌮",
    ]);
    assertEquals([client.code, client.stdout, client.stderr], [
      0,
      "> Hello\n> wörld 🌮\n< 1: olleH\n< 2: 🌮 dlröw\n",
      "",
    ]);
    // "Hello\n" and "wörld 🌮\n" are 6 + 12 bytes: one write per byte.
    assert(await server.waitForLine("#1   client → server 18 bytes in 18 writes, then FIN"));
  });
  await t.step("lesson 07", async () => {
    await using upstream = await LessonServer.start("lesson07-server");
    await using server = await proxy(upstream.port, ["--split", "1", "--quiet"]);
    const port = String(server.port);
    const set = await runTask("lesson07-client", ["--port", port, "set", "color", "blue"]);
    assertEquals([set.code, set.stdout], [0, '{"ok":true}\n']);
    const get = await runTask("lesson07-client", ["--port", port, "get", "color"]);
    assertEquals([get.code, get.stdout], [0, '{"ok":true,"value":"blue"}\n']);
    assert(await server.waitForLine("#2   server → client 42 bytes in 42 writes, then FIN"));
  });
  await t.step("lesson 05 --naive: each piece becomes a message", async () => {
    await using upstream = await LessonServer.start("lesson05-server", ["--naive"]);
    await using server = await proxy(upstream.port, ["--split", "2", "--delay", "30", "--quiet"]);
    const client = await runTask("lesson05-client", [
      "--port",
      String(server.port),
      "--message",
      "Hello",
    ]);
    assertEquals([client.code, client.stdout], [0, "> Hello\n< 1: eH\n< 2: ll\n< 3: o\n"]);
  });
});

test("lesson 19: the proxy works in front of the earlier lessons' servers", async (t) => {
  const cases: [string, string[]][] = [
    ["02", ["--message", "through the proxy"]],
    ["07", ["set", "color", "blue"]],
    ["03", ["--message", "straße 🌮"]],
    ["06", []],
    ["08", ["--clients", "5"]],
    ["04", []],
    ["09", []],
    ["10", []],
    ["11", []],
    ["12", ["--name", "zoe"]],
    ["15", ["--message", "through"]],
  ];
  for (const [lesson, args] of cases) {
    await t.step(`lesson ${lesson}: the same output as without the proxy`, async () => {
      // Two fresh servers, one for each run: some count or store across connections.
      await using alone = await LessonServer.start(`lesson${lesson}-server`);
      await using upstream = await LessonServer.start(`lesson${lesson}-server`);
      const stdin = { "11": "hello\n/bye\n", "12": "/users\n" }[lesson];
      const client = `lesson${lesson}-client`;
      const direct = await runTask(client, ["--port", String(alone.port), ...args], { stdin });
      await using server = await proxy(upstream.port, ["--split", "3", "--quiet"]);
      const proxied = await runTask(client, ["--port", String(server.port), ...args], { stdin });
      assertEquals([direct.code, direct.stderr], [0, ""]);
      const hidePorts = (text: string) =>
        text.replace(/:\d+/g, ":PORT").replace(/\d+(\.\d+)? ms/g, "N ms");
      assertEquals([proxied.code, hidePorts(proxied.stdout), proxied.stderr], [
        0,
        hidePorts(direct.stdout),
        "",
      ]);
    });
  }
});

test("lesson 19: the wire-check client, through the proxy to lesson 08's echo", async () => {
  await using upstream = await LessonServer.start("lesson08-server");
  await using server = await proxy(upstream.port, ["--quiet", "--split", "1000", "--delay", "0"]);
  const client = await runTask("lesson19-client", [
    "--port",
    String(server.port),
    "--bytes",
    "3000000",
  ]);
  assertEquals(client.code, 0, client.stderr);
  assertMatch(client.stdout, /^sent 3000000 bytes, got every one back in order, in \d+\.\d ms\n$/);
  // In pieces of at most 1,000 bytes: at least 3,000 writes.
  assert(await server.waitForLine(/^#1 {3}client → server 3000000 bytes in \d+ writes, then FIN$/));
  const writes = Number(
    server.lines.find((l) => l.startsWith("#1   client"))!.match(/in (\d+)/)![1],
  );
  assert(writes >= 3000, `${writes} writes`);
});

Deno.test("lesson 19: the wire-check client notices a wrong echo and a short one", async () => {
  // A "server" that corrupts byte 10, and one that stops after 100 bytes.
  await withUpstream(async (conn) => {
    const data = await readExactly(conn, 64);
    data[10] ^= 0xff;
    await writeAll(conn, data);
  }, async (port) => {
    const client = await runTask("lesson19-client", ["--port", String(port), "--bytes", "64"]);
    assertEquals(client.code, 1);
    assertMatch(client.stderr, /^byte 10 differs: sent 0x[0-9a-f]{2}, got back 0x[0-9a-f]{2}\n$/);
  });
  await withUpstream(async (conn) => {
    await writeAll(conn, await readExactly(conn, 100));
  }, async (port) => {
    const client = await runTask("lesson19-client", ["--port", String(port), "--bytes", "1000"]);
    assertEquals([client.code, client.stderr], [
      1,
      "the server closed after 100 of the 1000 bytes we sent\n",
    ]);
  });
});

test("lesson 19: --rewrite changes the chat's lines, even when a read cuts a name in two", async () => {
  await using chat = await LessonServer.start("lesson12-server");
  await using server = await proxy(chat.port, ["--rewrite", "bob=mallory", "--quiet"]);
  const client = await runTask("lesson12-client", [
    "--port",
    String(server.port),
    "--name",
    "alice",
  ], { stdin: "/to alice pay 10 coins to bob\n" });
  assertEquals([client.code, client.stdout], [
    0,
    "* you are alice: /help lists the commands\nalice: pay 10 coins to mallory\n* bye\n",
  ]);
  assert(
    await server.waitForLine(
      "#1   client → server 47 bytes, 51 after rewriting, in 3 writes, then FIN",
    ),
  );

  // A raw client cuts "bob" across two writes, 100 ms apart.
  const conn = await rawConnect(server.port);
  try {
    await writeAll(conn, encode("/name carol\n/to carol hi bo"));
    await sleep(100);
    await writeAll(conn, encode("b\n/bye\n"));
    assertEquals(
      decode(await readToEnd(conn, 5_000)),
      "ok name carol\nfrom carol hi mallory\nok sent carol\nbye\n",
    );
  } finally {
    closeRaw(conn);
  }
});

test("lesson 19: a slow receiver slows the sender; nothing piles up in the proxy", async () => {
  const chunk = randomBytes(64 * 1024);
  const total = 128 * MiB;
  let written = 0;
  await withUpstream(async (conn) => {
    // Writes as fast as the network takes it; `written` shows how far it got.
    while (written < total) {
      await writeAll(conn, chunk);
      written += chunk.length;
    }
    await conn.closeWrite();
  }, async (port) => {
    await using server = await proxy(port, ["--quiet"]);
    const conn = await rawConnect(server.port);
    try {
      await sleep(1_500); // not reading
      const stalled = written;
      // If the proxy read on without waiting for its writes, all 128 MiB would
      // be in its memory by now. With backpressure, only what the kernel
      // buffers of the two connections hold has left the sender.
      assert(
        stalled < 48 * MiB,
        `the sender got ${stalled} bytes out to a client that does not read`,
      );
      await sleep(500);
      assertEquals(written, stalled, "the sender went on while nobody read");
      // Now read it all: every byte arrives, in order.
      const buffer = new Uint8Array(chunk.length);
      let got = 0;
      while (true) {
        const n = await readWithTimeout(conn, buffer, 10_000, "the proxy");
        if (n === null) break;
        for (let i = 0; i < n; i++) {
          if (buffer[i] !== chunk[(got + i) % chunk.length]) {
            throw new Error(`byte ${got + i} differs`);
          }
        }
        got += n;
      }
      assertEquals(got, total);
    } finally {
      closeRaw(conn);
    }
  });
});

test("lesson 19: 200 clients at once, each answered by lesson 05 through the proxy", async () => {
  await using upstream = await LessonServer.start("lesson05-server");
  await using server = await proxy(upstream.port, ["--quiet"]);
  const conns = await Promise.all(Array.from({ length: 200 }, () => rawConnect(server.port)));
  try {
    // All 200 are open before any of them sends: they are relayed at the same time.
    const answers = await Promise.all(conns.map(async (conn, i) => {
      await writeAll(conn, encode(`client ${i}\n`));
      await conn.closeWrite();
      return decode(await readToEnd(conn, 10_000));
    }));
    answers.forEach((answer, i) =>
      assertEquals(answer, `1: ${[...`client ${i}`].reverse().join("")}\n`)
    );
  } finally {
    conns.forEach(closeRaw);
  }
  // Three closing lines per connection: 600 events, at most 50 lines a
  // second shown (lib/log.ts peerLog) and the rest counted.
  await server.waitForQuiet(1_200, 15_000);
  const shown = server.lines.filter((line) => /^#\d+ /.test(line)).length;
  const counted = server.lines
    .map((line) => Number(line.match(/^\((\d+) more events? not shown/)?.[1] ?? 0))
    .reduce((a, b) => a + b, 0);
  assertEquals(shown + counted, 200 * 3);
});

test("lesson 19: reads in turns: more busy connections than turns are all relayed, behind silent ones", async () => {
  await using upstream = await LessonServer.start("lesson08-server", ["--quiet"]);
  await using server = await proxy(upstream.port, ["--quiet"]);
  const total = READ_TURNS + 50; // each is 2 reads in the proxy: a crowd, over 3 times as many as turns
  const open = (n: number) => Promise.all(Array.from({ length: n }, () => rawConnect(server.port)));
  // The silent ones each leave two reads waiting in the proxy (client and
  // server side), holding turns until they are taken back.
  const silent = await open(total);
  const busy = await open(total);
  try {
    await sleep(50); // let the proxy connect them and start their reads
    for (let round = 0; round < 3; round++) {
      const messages = busy.map((_, i) => encode(`round ${round} client ${i}\n`));
      await Promise.all(busy.map((conn, i) => writeAll(conn, messages[i])));
      const echoes = await Promise.all(
        busy.map((conn, i) => readExactly(conn, messages[i].length)),
      );
      assertEquals(echoes, messages);
    }
    // A silent one that speaks at last is relayed both ways too.
    const late = encode("late\n");
    await writeAll(silent[0], late);
    assertEquals(await readExactly(silent[0], late.length), late);
  } finally {
    [...silent, ...busy].forEach(closeRaw);
  }
});

test("lesson 19: upstream refused: the client's connection is closed at once, one log line", async () => {
  const port = closedPort();
  await using server = await proxy(port, ["--quiet"]);
  const conn = await rawConnect(server.port);
  try {
    assertEquals((await readToEnd(conn, 5_000)).length, 0);
  } finally {
    closeRaw(conn);
  }
  assert(await server.waitForLine(/^#1 /));
  assertMatch(
    server.lines[2],
    new RegExp(
      `^#1 127\\.0\\.0\\.1:\\d+: could not connect to 127\\.0\\.0\\.1:${port}: connection refused: ` +
        "closed the client's connection$",
    ),
  );
  // The lesson clients report it as a server that hung up.
  const client = await runTask("lesson05-client", [
    "--port",
    String(server.port),
    "--message",
    "hi",
  ]);
  assertEquals([client.code, client.stderr], [
    1,
    "the server closed the connection before answering\n",
  ]);
  assertEquals(server.stderr, "");
});

test("lesson 19: a reset on either side closes both sides at once", async (t) => {
  await t.step("the client resets", async () => {
    let upstreamSaw = "";
    await withUpstream(async (conn) => {
      upstreamSaw = decode(await readToEnd(conn, 5_000)); // ends at once when the proxy closes
    }, async (port) => {
      await using server = await proxy(port);
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(server.port, "127.0.0.1", () => {
          socket.write("hello\n", () =>
            setTimeout(() => {
              socket.resetAndDestroy();
              resolve();
            }, 200));
        });
        socket.on("error", reject);
      });
      assert(await server.waitForLine(/^#1 {3}server → client/, 5_000));
      assertStringIncludes(server.lines.join("\n"), "client → server RESET: closing both sides");
      assert(server.lines.includes("#1   client → server 6 bytes in 1 write, then reset"));
    });
    assertEquals(upstreamSaw, "hello\n");
  });

  await t.step("the server resets", async () => {
    const upstream = net.createServer((socket) => {
      socket.on("data", () => socket.resetAndDestroy());
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    try {
      const port = (upstream.address() as net.AddressInfo).port;
      await using server = await proxy(port, ["--quiet"]);
      const conn = await rawConnect(server.port);
      try {
        await writeAll(conn, encode("boom\n"));
        // The client's connection ends promptly (EOF or reset), it does not hang.
        const ended = await readToEnd(conn, 5_000).then((b) => b.length, (e) => e.name);
        assert(ended === 0 || ended === "ConnectionReset", `the client saw ${ended}`);
      } finally {
        closeRaw(conn);
      }
      assert(await server.waitForLine("#1   server → client 0 bytes in 0 writes, then reset"));
    } finally {
      await new Promise((resolve) => upstream.close(resolve));
    }
  });
});

test("lesson 19: bad --to and --rewrite are one-line usage errors", async () => {
  const bad = await runTask("lesson19-server", ["--to", "localhost"]);
  assertEquals([bad.code, bad.stderr], [
    2,
    '--to must be HOST:PORT, e.g. 127.0.0.1:65405, got "localhost"\n',
  ]);
  const rewrite = await runTask("lesson19-server", ["--rewrite", "=x"]);
  assertEquals([rewrite.code, rewrite.stderr], [
    2,
    '--rewrite must be FROM=TO with a FROM that is not empty, got "=x"\n',
  ]);
});

Deno.test("lesson 19: in front of lesson 18's TLS server it relays only opaque bytes", async () => {
  // Lesson 18's certificates are made by its own task (with openssl), once.
  const certs = new URL("../lessons/18-tls/certs/server.crt", import.meta.url);
  if (!(await Deno.stat(certs).then(() => true, () => false))) {
    const made = await runTask("lesson18-certs", []);
    assertEquals(made.code, 0, made.stderr);
  }
  const message = ["--message", "pay bob"];

  // Plain text first (lesson 05): the proxy reads it, and rewrites it.
  await using plain = await LessonServer.start("lesson05-server");
  await using plainProxy = await proxy(plain.port, ["--rewrite", "bob=mallory"]);
  const rewritten = await runTask("lesson05-client", [
    "--port",
    String(plainProxy.port),
    ...message,
  ]);
  assertEquals(rewritten.stdout, "> pay bob\n< 1: yrollam yap\n");
  assert(await plainProxy.waitForLine(/^#1 {3}server → client/));
  assertStringIncludes(plainProxy.lines.join("\n"), "|pay bob.|");

  // The same message over TLS (lesson 18): the bytes are noise; nothing to rewrite.
  await using tls = await LessonServer.start("lesson18-server");
  await using tlsProxy = await proxy(tls.port, ["--rewrite", "bob=mallory"]);
  const client = await runTask("lesson18-client", ["--port", String(tlsProxy.port), ...message]);
  assertEquals(client.code, 0, client.stderr);
  assert(client.stdout.endsWith("< 1: bob yap\n"), client.stdout);
  assert(await tlsProxy.waitForLine(/^#1 {3}server → client/));
  const trace = tlsProxy.lines.join("\n");
  assertMatch(trace, /client → server \d+ bytes\n {2}00000000 {2}16 03 0[13]/); // a ClientHello
  // Application data records (17 03 03 and a length) follow, somewhere in the chunks.
  const hex = tlsProxy.lines.filter((l) => /^ {2}[0-9a-f]{8} {2}/.test(l))
    .map((l) => l.slice(12, 61).replace(/ /g, "")).join("");
  assertStringIncludes(hex, "170303");
  assert(!trace.includes("pay") && !trace.includes("rewrote"), trace);
});

test("lesson 19: a connection with nothing either way for --idle-timeout is closed", async () => {
  let upstreamSaw = "";
  await withUpstream(async (conn) => {
    upstreamSaw = decode(await readToEnd(conn, 10_000)); // EOF when the proxy gives up
  }, async (port) => {
    await using server = await proxy(port, ["--idle-timeout", "1", "--quiet"]);
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, encode("hi\n"));
      const started = Date.now();
      assertEquals((await readToEnd(conn, 10_000)).length, 0); // then silence: closed by the proxy
      const waited = Date.now() - started;
      assert(waited >= 900 && waited < 5_000, `closed after ${waited} ms`);
    } finally {
      closeRaw(conn);
    }
    assert(await server.waitForLine("#1 nothing either way for 1 s: closing"));
    assert(await server.waitForLine(/^#1 {3}client → server 3 bytes in 1 write, then cut off: /));
  });
  assertEquals(upstreamSaw, "hi\n");
});

test("lesson 19: a slow --split/--delay forward longer than --idle-timeout is not idle", async () => {
  let upstreamSaw = 0;
  await withUpstream(async (conn) => {
    upstreamSaw = (await readToEnd(conn, 10_000)).length;
  }, async (port) => {
    // 200 bytes in 20 writes, 200 ms apart: 4 s of forwarding after one read.
    await using server = await proxy(port, [
      "--idle-timeout",
      "1",
      "--split",
      "10",
      "--delay",
      "200",
      "--quiet",
    ]);
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, randomBytes(200));
      await conn.closeWrite();
      assertEquals((await readToEnd(conn, 10_000)).length, 0);
    } finally {
      closeRaw(conn);
    }
    assert(await server.waitForLine(/^#1 {3}client → server 200 bytes in 20 writes, then FIN$/));
    assert(!server.lines.some((l) => l.includes("nothing either way")), server.lines.join("\n"));
  });
  assertEquals(upstreamSaw, 200);
});

test("lesson 19: with --rewrite, a last line without LF is rewritten and passed on at EOF", async () => {
  let upstreamSaw = "";
  await withUpstream(async (conn) => {
    upstreamSaw = decode(await readToEnd(conn, 5_000)); // only a relayed FIN ends this
    await writeAll(conn, encode(`got ${upstreamSaw}`));
    await conn.closeWrite();
  }, async (port) => {
    await using server = await proxy(port, ["--rewrite", "bob=mallory", "--quiet"]);
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, encode("pay bob")); // no LF: the rewriter holds it until EOF
      await conn.closeWrite();
      assertEquals(decode(await readToEnd(conn, 5_000)), "got pay mallory");
    } finally {
      closeRaw(conn);
    }
  });
  assertEquals(upstreamSaw, "pay mallory");
});

test("lesson 19: a client that sends a line bit by bit under --rewrite is not idle", async () => {
  let upstreamSaw = "";
  await withUpstream(async (conn) => {
    upstreamSaw = decode(await readToEnd(conn, 10_000));
  }, async (port) => {
    // Nothing is forwarded until the LF (the rewriter holds the line), so only
    // the reads show that this connection is alive.
    await using server = await proxy(port, ["--rewrite", "x=y", "--idle-timeout", "1", "--quiet"]);
    const conn = await rawConnect(server.port);
    try {
      for (let i = 0; i < 8; i++) { // 2.4 s in all, never 1 s of silence
        await writeAll(conn, encode("a"));
        await sleep(300);
      }
      await writeAll(conn, encode("\n"));
      await conn.closeWrite();
      assertEquals((await readToEnd(conn, 5_000)).length, 0);
    } finally {
      closeRaw(conn);
    }
    assert(!server.lines.some((l) => l.includes("nothing either way")), server.lines.join("\n"));
  });
  assertEquals(upstreamSaw, "aaaaaaaa\n");
});
