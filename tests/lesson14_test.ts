/**
 * Lesson 14: UDP. The real server and client as processes, plus raw UDP
 * sockets in the test: for the key-value rules, a burst of 1,000 requests,
 * and fake servers that drop, repeat, reorder and forge replies.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { test } from "./_checks.ts";
import { decode, encode, LessonServer, runTask, sleep } from "./_helpers.ts";
import { Replies } from "../lessons/14-udp/replies.ts";

const VERSION = "version=Deno Socket Lessons 14";

/**
 * A raw UDP socket for the test. One loop receives for its whole life (a
 * `receive()` cannot be cancelled, only ended by closing the socket), so
 * every wait here has a time limit and no op is left behind.
 */
class Peer implements AsyncDisposable {
  socket: Deno.DatagramConn;
  #queue: [Uint8Array, Deno.NetAddr][] = [];
  #wake: (() => void) | undefined;
  #loop: Promise<void>;

  constructor(hostname = "127.0.0.1") {
    const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    this.socket = socket;
    this.#loop = (async () => {
      try {
        while (true) {
          const [data, from] = await socket.receive();
          this.#queue.push([data.slice(), from as Deno.NetAddr]);
          this.#wake?.();
        }
      } catch {
        // closed
      }
    })();
  }

  get port(): number {
    return (this.socket.addr as Deno.NetAddr).port;
  }

  send(data: string | Uint8Array, port: number, hostname = "127.0.0.1"): Promise<number> {
    const bytes = typeof data === "string" ? encode(data) : data;
    return this.socket.send(bytes, { transport: "udp", hostname, port });
  }

  /** The next datagram, or undefined if none comes within `timeoutMs`. */
  async next(timeoutMs = 2_000): Promise<[Uint8Array, Deno.NetAddr] | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0 && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, deadline - Date.now());
      });
      clearTimeout(timer);
    }
    return this.#queue.shift();
  }

  /** The next datagram as text, or undefined. */
  async text(timeoutMs = 2_000): Promise<string | undefined> {
    const got = await this.next(timeoutMs);
    return got && decode(got[0]);
  }

  /** Sends one request to `port` and returns the reply's text (or undefined). */
  async ask(request: string | Uint8Array, port: number, timeoutMs = 2_000) {
    await this.send(request, port);
    return await this.text(timeoutMs);
  }

  async [Symbol.asyncDispose]() {
    this.socket.close();
    await this.#loop;
  }
}

test("lesson 14: the client and server, as the README runs them", async (t) => {
  await using server = await LessonServer.start("lesson14-server");
  const port = String(server.port);
  const client = (...args: string[]) => runTask("lesson14-client", ["--port", port, ...args]);
  const at = `127.0.0.1:${port}`;

  await t.step("--ping 5: five pongs in order, then the statistics", async () => {
    const result = await client("--ping", "5", "--interval", "20");
    assertEquals([result.code, result.stderr], [0, ""]);
    const lines = result.stdout.trimEnd().split("\n");
    assertEquals(lines[0], `PING ${at}: 5 pings, one every 20 ms`);
    for (let seq = 1; seq <= 5; seq++) {
      assertMatch(lines[seq], new RegExp(`^pong from ${at}: seq=${seq} time=\\d+\\.\\d{3} ms$`));
    }
    assertEquals(lines.slice(6, 8), [
      `--- ${at} ping statistics ---`,
      "5 sent, 5 received, 0% loss",
    ]);
    assertMatch(lines[8], /^rtt min \d+\.\d{3} ms, avg \d+\.\d{3} ms, max \d+\.\d{3} ms$/);
    assertEquals(lines.length, 9);
    for (let seq = 1; seq <= 5; seq++) {
      assert(
        server.lines.some((line) =>
          new RegExp(`^ping ${seq} from 127\\.0\\.0\\.1:\\d+$`).test(line)
        ),
      );
    }
  });

  await t.step("--set and --get: a value with =, then read back", async () => {
    const set = await client("--set", "greeting=hello=world");
    assertEquals([set.code, set.stdout, set.stderr], [
      0,
      "> greeting=hello=world\n< greeting=hello=world\n",
      "",
    ]);
    const get = await client("--get", "greeting");
    assertEquals([get.code, get.stdout], [0, "> greeting\n< greeting=hello=world\n"]);
    const unknown = await client("--get", "nobody");
    assertEquals([unknown.code, unknown.stdout], [0, "> nobody\n< nobody=\n"]);
  });

  await t.step("--set version=...: not stored, exit 1, one line", async () => {
    const result = await client("--set", "version=2");
    assertEquals([result.code, result.stdout, result.stderr], [
      1,
      `> version=2\n< ${VERSION}\n`,
      `not stored: the server kept ${VERSION} (version is read-only)\n`,
    ]);
  });

  await t.step("lines from stdin: one datagram each, empty ones too", async () => {
    const result = await runTask("lesson14-client", ["--port", port], {
      stdin: "=anyone\n\nversion\n",
    });
    assertEquals(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    // Sent in this order; the replies come whenever they come.
    assertEquals(lines.filter((l) => l.startsWith(">")), [
      "> =anyone",
      "> (an empty datagram)",
      "> version",
    ]);
    const replies = lines.filter((l) => l.startsWith("<")).sort();
    assertEquals(replies.length, 3);
    assert(replies.includes(`< ${VERSION}`) && replies.includes("< =anyone"), replies.join("\n"));
  });

  await t.step("a line over 1,000 bytes is ignored by the server: the client says so", async () => {
    const result = await runTask("lesson14-client", ["--port", port, "--timeout", "0.3"], {
      stdin: "k".repeat(2000) + "\n",
    });
    assertEquals([result.code, result.stdout, result.stderr], [
      1,
      `> ${"k".repeat(40)}… (2000 bytes)\n`,
      "no reply to 1 of 1 datagram within 300 ms: lost, ignored by the server, or no server at all " +
      "(UDP cannot tell which)\n",
    ]);
    assert(
      await server.waitForLine(
        /^ignored a datagram from 127\.0\.0\.1:\d+: longer than 1000 bytes$/,
      ),
    );
  });

  await t.step(
    "a line too long for any datagram is not sent, and the exit code says so",
    async () => {
      const result = await runTask("lesson14-client", ["--port", port], {
        stdin: "k".repeat(70_000) + "\nversion\n",
      });
      assertEquals([result.code, result.stdout, result.stderr], [
        1,
        `> version\n< ${VERSION}\n`,
        "that line is 70000 bytes, more than the limit of 65507: not sent\n" +
        "1 line not sent: longer than 65507 bytes, the most one UDP datagram can carry\n",
      ]);
      const empty = await runTask("lesson14-client", ["--port", port], { stdin: "" });
      assertEquals([empty.code, empty.stdout, empty.stderr], [
        1,
        "",
        "nothing was sent: standard input had no lines\n",
      ]);
    },
  );

  await t.step("usage errors are one line, exit 2", async () => {
    const cases: [string[], string][] = [
      [["--set", "novalue"], '--set needs KEY=VALUE, got "novalue"'],
      [["--get", "a=b"], "--get KEY cannot contain =: a request with = is an insert"],
      [["--ping", "2", "--get", "a"], "choose one of --ping, --set, --get"],
      [
        ["--get", "k".repeat(1001)],
        "a request is at most 1000 bytes: the server ignores longer ones",
      ],
      [
        ["--host", "example.org", "--get", "a"],
        '--host must be an IP address such as 127.0.0.1 or ::1, got "example.org"',
      ],
    ];
    for (const [args, message] of cases) {
      const result = await client(...args);
      assertEquals(
        [result.code, result.stdout, result.stderr],
        [2, "", message + "\n"],
        args.join(" "),
      );
    }
  });
});

test("lesson 14: the key-value rules, datagram by datagram", async (t) => {
  await using server = await LessonServer.start("lesson14-server", ["--max-keys", "3"]);
  await using peer = new Peer();
  const ask = (request: string | Uint8Array, timeoutMs?: number) =>
    peer.ask(request, server.port, timeoutMs);

  await t.step("insert splits at the first =; the value may contain =", async () => {
    assertEquals(await ask("a=b=c"), "a=b=c");
    assertEquals(await ask("a"), "a=b=c");
    assertEquals(await ask("a==="), "a===");
    assertEquals(await ask("a"), "a===");
  });
  await t.step("the empty key is a key; an empty datagram retrieves it", async () => {
    assertEquals(await ask(""), "=");
    assertEquals(await ask("=x=y"), "=x=y");
    assertEquals(await ask(""), "=x=y");
  });
  await t.step("an unknown key is answered key=", async () => {
    assertEquals(await ask("nothing here"), "nothing here=");
  });
  await t.step("version is read-only", async () => {
    assertEquals(await ask("version"), VERSION);
    assertEquals(await ask("version=evil"), VERSION);
    assertEquals(await ask("version="), VERSION);
    assertEquals(await ask("version"), VERSION);
  });
  await t.step("ping SEQ TIMESTAMP gets pong with the same numbers", async () => {
    assertEquals(await ask("ping 7 1234.567"), "pong 7 1234.567");
    // Not the exact form of a ping: the key-value rules apply.
    assertEquals(await ask("ping 7"), "ping 7=");
  });
  await t.step(
    "a request of 1,000 bytes is answered; 1,001 or more, or not UTF-8, is not",
    async () => {
      const longest = "k=" + "v".repeat(998);
      assertEquals(await ask(longest), longest);
      assertEquals(await ask("k=" + "v".repeat(999), 300), undefined);
      assertEquals(await ask("k".repeat(5000), 300), undefined);
      assertEquals(await ask(new Uint8Array([0x6b, 0x3d, 0xff, 0xfe]), 300), undefined);
      assertEquals(await ask("k"), longest, "the ignored requests changed nothing");
    },
  );
  await t.step("a trailing LF (nc -u) is removed, and the reply gets one", async () => {
    assertEquals(await ask("version\n"), VERSION + "\n");
    assertEquals(await ask("a=nl\r\n"), "a=nl\n");
    // The 1,000-byte value is whole; the LF would not fit, so it is left off.
    assertEquals(await ask("k\n"), "k=" + "v".repeat(998));
  });
  await t.step("--max-keys: a full store refuses new keys, and says what they hold", async () => {
    // "a", "" and "k" are stored: a fourth key is not.
    assertEquals(await ask("new=1"), "new=");
    assertEquals(await ask("new"), "new=");
    assertEquals(await ask("a=updated"), "a=updated", "an existing key can still change");
  });
});

test("lesson 14: the server's log says what it did with each datagram", async () => {
  // A fresh server: the log prints at most 20 lines a second, so a fast test
  // of many requests would see some of its lines summarised instead.
  await using server = await LessonServer.start("lesson14-server", ["--max-keys", "1"]);
  await using peer = new Peer();
  assertEquals(await peer.ask("a=1", server.port), "a=1");
  assertEquals(await peer.ask("b=2", server.port), "b=");
  assertEquals(await peer.ask("version=2", server.port), VERSION);
  assertEquals(await peer.ask(new Uint8Array([0xff]), server.port, 200), undefined);
  assertEquals(await peer.ask("k".repeat(1001), server.port, 200), undefined);
  assertEquals(await peer.ask("ping 3 1.5", server.port), "pong 3 1.5");
  assertEquals(await peer.ask("a", server.port), "a=1");
  assert(await server.waitForLineCount(8));
  const from = `from 127.0.0.1:${peer.port}`;
  assertEquals(server.lines.slice(1), [
    `insert "a" ${from}`,
    `insert "b" ${from}: not stored, the store is full`,
    `insert "version" ${from}: not stored, version is read-only`,
    `ignored a datagram ${from}: not UTF-8 text`,
    `ignored a datagram ${from}: longer than 1000 bytes`,
    `ping 3 ${from}`,
    `retrieve "a" ${from}`,
  ]);
});

test("lesson 14: a burst of 1,000 requests: each answered correctly or counted lost", async () => {
  await using server = await LessonServer.start("lesson14-server");
  await using peer = new Peer();
  const requests = Array.from({ length: 1000 }, (_, i) => i % 2 ? `k${i}` : `k${i}=v${i}`);
  for (const request of requests) await peer.send(request, server.port);
  // Inserts (even i) are answered with themselves; retrieves (odd i) ask for
  // keys nobody inserted, so whichever requests are lost, the answers are known.
  const expected = new Map(requests.map((r, i) => [i % 2 ? `k${i}=` : r, i]));
  const seen = new Set<string>();
  let reply: string | undefined;
  while ((reply = await peer.text(1_000)) !== undefined) {
    assert(expected.has(reply), `unexpected reply ${JSON.stringify(reply)}`);
    assert(!seen.has(reply), `duplicate reply ${reply}`);
    seen.add(reply);
  }
  const lost = requests.length - seen.size;
  assert(seen.size > 0, "nothing answered at all");
  assertEquals(seen.size + lost, 1000);
  // The server is still there, and answers the next one.
  assertEquals(await peer.ask("version", server.port), VERSION);

  // The client's own burst: its statistics add up to what it printed.
  const result = await runTask("lesson14-client", [
    "--port",
    String(server.port),
    "--ping",
    "1000",
    "--interval",
    "0",
  ]);
  assertEquals(result.code, 0, result.stderr);
  const pongs = result.stdout.split("\n").filter((line) => line.startsWith("pong ")).length;
  const stats = result.stdout.match(/^1000 sent, (\d+) received, ([\d.]+)% loss$/m);
  if (!stats) throw new Error(`no statistics line in:\n${result.stdout.slice(-500)}`);
  assertEquals(Number(stats[1]), pongs);
  assertEquals(Number(stats[2]), +((1000 - pongs) / 10).toFixed(1));
});

test("lesson 14: --loss drops replies; the client retries with backoff, then gives up honestly", async (t) => {
  await t.step("--loss 30 --seed 14: the same replies are lost on every run", async () => {
    for (let run = 0; run < 2; run++) {
      await using server = await LessonServer.start("lesson14-server", [
        "--loss",
        "30",
        "--seed",
        "14",
      ]);
      const port = String(server.port);
      const ping = await runTask("lesson14-client", [
        "--port",
        port,
        "--ping",
        "10",
        "--interval",
        "10",
      ]);
      const seqs = [...ping.stdout.matchAll(/seq=(\d+) /g)].map((m) => Number(m[1]));
      assertEquals(seqs, [1, 2, 3, 4, 6, 7, 9, 10]);
      assertEquals([ping.code, ping.stdout.includes("10 sent, 8 received, 20% loss\n")], [0, true]);
      const set = await runTask("lesson14-client", ["--port", port, "--set", "colour=blue"]);
      assertEquals(set.stdout, "> colour=blue\n< colour=blue\n");
      // The 12th reply is dropped: the first try gets nothing, the second does.
      const get = await runTask("lesson14-client", [
        "--port",
        port,
        "--get",
        "colour",
      ]);
      assertEquals([get.code, get.stdout, get.stderr], [
        0,
        "> colour\nno reply within 500 ms: sending again, waiting up to 1000 ms (try 2 of 4)\n" +
        "> colour\n< colour=blue\n",
        "",
      ]);
      assertEquals(server.lines.filter((l) => l.endsWith("reply dropped (--loss)")).length, 3);
    }
  });

  await t.step(
    "--loss 100: every try is sent, each wait doubles, then one line, exit 1",
    async () => {
      await using server = await LessonServer.start("lesson14-server", ["--loss", "100"]);
      const result = await runTask("lesson14-client", [
        "--port",
        String(server.port),
        "--get",
        "a",
        "--timeout",
        "0.05",
        "--tries",
        "3",
      ]);
      assertEquals([result.code, result.stdout, result.stderr], [
        1,
        "> a\nno reply within 50 ms: sending again, waiting up to 100 ms (try 2 of 3)\n" +
        "> a\nno reply within 100 ms: sending again, waiting up to 200 ms (try 3 of 3)\n> a\n",
        `no reply after 3 tries over 0.35 s: is the server running at 127.0.0.1:${server.port}? ` +
        "(UDP cannot tell a missing server from a lost datagram) start it with: deno task lesson14-server\n",
      ]);
      // All three tries reached the server: it was the replies that were lost.
      assert(await server.waitForLineCount(4));
      assertEquals(server.lines.slice(1).map((l) => l.replace(/:\d+:/, ":PORT:")), [
        'retrieve "a" from 127.0.0.1:PORT: reply dropped (--loss)',
        'retrieve "a" from 127.0.0.1:PORT: reply dropped (--loss)',
        'retrieve "a" from 127.0.0.1:PORT: reply dropped (--loss)',
      ]);
      // One try is "1 try" (after the log check: it adds to the log).
      const once = await runTask("lesson14-client", [
        "--port",
        String(server.port),
        "--get",
        "a",
        "--timeout",
        "0.05",
        "--tries",
        "1",
      ]);
      assertMatch(once.stderr, /^no reply after 1 try over 0\.05 s: /);
    },
  );

  await t.step("--ping with --loss 100: no reply at all is exit 1", async () => {
    await using server = await LessonServer.start("lesson14-server", ["--loss", "100"]);
    const result = await runTask("lesson14-client", [
      "--port",
      String(server.port),
      "--ping",
      "2",
      "--interval",
      "10",
      "--timeout",
      "0.1",
    ]);
    assertEquals(result.code, 1);
    assertMatch(result.stdout, /\n2 sent, 0 received, 100% loss\n$/);
    assertMatch(result.stderr, /^no reply to any of 2 pings: is the server running at /);
  });
});

test("lesson 14: --delay reorders replies; none is lost", async () => {
  await using server = await LessonServer.start("lesson14-server", [
    "--delay",
    "150",
    "--seed",
    "3",
  ]);
  const result = await runTask("lesson14-client", [
    "--port",
    String(server.port),
    "--ping",
    "10",
    "--interval",
    "5",
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertMatch(result.stdout, /\n10 sent, 10 received, 0% loss\n/);
  const seqs = [...result.stdout.matchAll(/seq=(\d+) /g)].map((m) => Number(m[1]));
  assertEquals([...seqs].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert(server.lines.filter((l) => /: reply in \d+ ms$/.test(l)).length === 10);
  // Every pong printed after a higher SEQ is marked.
  let highest = 0;
  for (const line of result.stdout.split("\n").filter((l) => l.startsWith("pong "))) {
    const seq = Number(line.match(/seq=(\d+)/)![1]);
    assertEquals(line.endsWith(" (out of order)"), seq < highest, line);
    highest = Math.max(highest, seq);
  }
});

test("lesson 14: a fake server that repeats, reorders, forges and floods", async (t) => {
  await t.step(
    "--ping: duplicates shown once, old SEQs marked, bad pongs and strangers ignored",
    async () => {
      await using fake = new Peer();
      await using stranger = new Peer();
      const client = runTask("lesson14-client", [
        "--port",
        String(fake.port),
        "--ping",
        "3",
        "--interval",
        "0",
        "--timeout",
        "2",
      ]);
      const pings: [string, Deno.NetAddr][] = [];
      for (let i = 0; i < 3; i++) {
        const got = await fake.next();
        if (!got) throw new Error("the client sent fewer than 3 pings");
        pings.push([decode(got[0]), got[1]]);
      }
      const [, clientAddr] = pings[0];
      const pong = (i: number) => pings[i][0].replace(/^ping/, "pong");
      // A stranger's pong, a pong with a wrong timestamp, and one for a ping never sent.
      await stranger.send(pong(0), clientAddr.port);
      await fake.send(pong(0).replace(/ \S+$/, " 1.000"), clientAddr.port);
      await fake.send("pong 99 1.000", clientAddr.port);
      // Then 3, 1 (out of order), 1 again and again (duplicates), 2 (out of order).
      for (const i of [2, 0, 0, 0, 1]) await fake.send(pong(i), clientAddr.port);
      const result = await client;
      assertEquals(result.code, 0, result.stderr);
      const lines = result.stdout.trimEnd().split("\n").map((l) =>
        l.replace(/time=\S+ ms/, "time=N ms")
      );
      const at = `127.0.0.1:${fake.port}`;
      assertEquals(lines.slice(1, 5), [
        `pong from ${at}: seq=3 time=N ms`,
        `pong from ${at}: seq=1 time=N ms (out of order)`,
        `pong from ${at}: seq=1 (duplicate)`,
        `pong from ${at}: seq=2 time=N ms (out of order)`,
      ]);
      // The stranger, the wrong timestamp, SEQ 99 and the second duplicate.
      assertEquals(lines[6], "3 sent, 3 received, 0% loss, 4 other datagrams ignored");
    },
  );

  await t.step(
    "--get: replies for other keys are skipped; a flood cannot keep it going",
    async () => {
      await using fake = new Peer();
      const client = runTask("lesson14-client", ["--port", String(fake.port), "--get", "mine"]);
      let done = false;
      const finished = client.finally(() => done = true);
      // Answer the first try with a flood of replies for other keys, then the right
      // one. The flood may fill the client's queue or the kernel's receive buffer,
      // and the right one is lost with it: then a retry, answered without a flood,
      // gets it. (Flooding every try made the test depend on the machine's speed.)
      let tries = 0;
      while (!done) {
        const got = await fake.next(200);
        if (!got) continue;
        tries++;
        assertEquals(decode(got[0]), "mine");
        const flood = tries === 1 ? 2000 : 0;
        for (let i = 0; i < flood; i++) await fake.send(`other${i}=x`, got[1].port);
        await fake.send("mine=yes", got[1].port);
      }
      const result = await finished;
      assertEquals([result.code, result.stderr], [0, ""]);
      assert(result.stdout.endsWith("> mine\n< mine=yes\n"), result.stdout);
      assertEquals(result.stdout.split("\n").filter((l) => l === "> mine").length, tries);
    },
  );
});

test("lesson 14: replies over the client's queue are counted as dropped, not ignored", async () => {
  await using server = new Peer();
  await using stranger = new Peer();
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const replies = new Replies(
    socket,
    { transport: "udp", hostname: "127.0.0.1", port: server.port },
    1000,
  );
  try {
    const port = (socket.addr as Deno.NetAddr).port;
    await stranger.send("pong 1 1.000", port);
    // 1,005 replies that nobody reads yet, in small bursts so that the
    // kernel's receive buffer never overflows: the queue holds 1,000.
    for (let i = 0; i < 1005; i++) {
      await server.send(`reply ${i}`, port);
      if (i % 50 === 49) await sleep(5);
    }
    for (let waited = 0; replies.dropped < 5 && waited < 5_000; waited += 20) await sleep(20);
    assertEquals([replies.dropped, replies.ignored], [5, 1]);
    // The first 1,000 wait in order; the last 5 are gone.
    let read = 0;
    while ((await replies.next(performance.now() + 200)) === `reply ${read}`) read++;
    assertEquals(read, 1000);
  } finally {
    socket.close();
    await replies.finished();
  }
});

test("lesson 14: one client's trouble does not stop the server", async () => {
  await using server = await LessonServer.start("lesson14-server");
  // A client that sends and is gone before the reply: the reply meets a
  // closed port (an ICMP error comes back to the server).
  for (let i = 0; i < 20; i++) {
    const gone = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    await gone.send(encode(`ping ${i} 1.0`), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: server.port,
    });
    gone.close();
  }
  await using peer = new Peer();
  assertEquals(await peer.ask("version", server.port), VERSION);
  const client = await runTask("lesson14-client", [
    "--port",
    String(server.port),
    "--get",
    "version",
  ]);
  assertEquals([client.code, client.stdout], [0, `> version\n< ${VERSION}\n`]);
});

test("lesson 14: a restarted server answers at once (nothing to reconnect), with an empty store", async () => {
  let port: number;
  {
    await using first = await LessonServer.start("lesson14-server");
    port = first.port;
    const set = await runTask("lesson14-client", ["--port", String(port), "--set", "a=1"]);
    assertEquals(set.stdout, "> a=1\n< a=1\n");
  }
  await using second = await LessonServer.start("lesson14-server", ["--port", String(port)]);
  assertEquals(second.port, port);
  const get = await runTask("lesson14-client", ["--port", String(port), "--get", "a"]);
  assertEquals([get.code, get.stdout], [0, "> a\n< a=\n"]);
});

test("lesson 14: over IPv6 loopback", async () => {
  await using server = await LessonServer.start("lesson14-server", ["--host", "::1"]);
  assertEquals(server.host, "::1");
  assertMatch(server.lines[0], /^listening on \[::1\]:\d+$/);
  const get = await runTask("lesson14-client", [
    "--host",
    "::1",
    "--port",
    String(server.port),
    "--get",
    "version",
  ]);
  assertEquals([get.code, get.stdout], [0, `> version\n< ${VERSION}\n`]);
  const ping = await runTask("lesson14-client", [
    "--host",
    "::1",
    "--port",
    String(server.port),
    "--ping",
    "1",
  ]);
  assertMatch(ping.stdout, new RegExp(`pong from \\[::1\\]:${server.port}: seq=1 `));
});

Deno.test("lesson 14: 5,000 empty retrievals in 2 s get at most 3× their bytes back, plus 64 KiB a second", async () => {
  // The amplification attack: store 1,000 bytes under the empty key, then send
  // empty datagrams (28 bytes on the wire each) that each ask for them (1,028).
  await using server = await LessonServer.start("lesson14-server");
  await using peer = new Peer();
  const value = "=" + "v".repeat(999);
  assertEquals(await peer.ask(value, server.port), value);
  const wire = (payload: number) => payload + 28; // IPv4 and UDP headers
  let sent = wire(value.length);
  let received = wire(value.length);
  const start = performance.now();
  for (let batch = 0; batch < 100; batch++) {
    for (let i = 0; i < 50; i++) sent += wire(await peer.send(new Uint8Array(0), server.port));
    await sleep(20);
  }
  let replies = 0;
  let last = performance.now();
  let got: [Uint8Array, Deno.NetAddr] | undefined;
  while ((got = await peer.next(1_000)) !== undefined) {
    assertEquals(decode(got[0]), value);
    received += wire(got[0].length);
    replies++;
    last = performance.now();
  }
  const seconds = (last - start) / 1000;
  assert(seconds < 10, `the flood took ${seconds} s`);
  const bound = 3 * sent + 64 * 1024 * Math.max(seconds, 1);
  assert(
    received <= bound,
    `${sent} bytes sent got ${received} back in ${seconds.toFixed(2)} s (${replies} replies): ` +
      `more than 3× plus 64 KiB a second (${Math.round(bound)})`,
  );
  // The limit withholds only what is over the budget: the 3× share still comes back.
  assert(replies >= 300, `only ${replies} replies: the limit withheld what it owed`);
  assert(
    await server.waitForLine(
      /^retrieve "" from 127\.0\.0\.1:\d+: reply withheld \(--amplification-limit: it sent too little for it\)$/,
    ),
  );
  // Once the flood is over, the allowance comes back: a small request gets its big answer.
  await sleep(200);
  assertEquals(await peer.ask("", server.port), value);
});

Deno.test("lesson 14: the amplification budget, by the clock", async (t) => {
  const { AmplificationLimit, ALLOWANCE_BYTES, IDLE_MS, MAX_ADDRESSES, wireBytes } = await import(
    "../lessons/14-udp/amplification.ts"
  );
  let now = 0;
  const clock = () => now;
  assertEquals([wireBytes(0, false), wireBytes(1000, false), wireBytes(0, true)], [28, 1028, 48]);

  await t.step("3× what an address sent, plus the allowance it starts with", () => {
    const limit = new AmplificationLimit(3, clock);
    limit.received("192.0.2.1", 1000);
    assert(limit.maySend("192.0.2.1", 3000 + ALLOWANCE_BYTES));
    assert(!limit.maySend("192.0.2.1", 1), "nothing is left");
    // Another address has its own budget; the port is not part of it (the caller gives the IP).
    assert(limit.maySend("192.0.2.2", ALLOWANCE_BYTES));
  });
  await t.step("the allowance refills at its size a second, and saves up no more", () => {
    const limit = new AmplificationLimit(3, clock);
    assert(limit.maySend("192.0.2.1", ALLOWANCE_BYTES));
    now += 500;
    assert(!limit.maySend("192.0.2.1", ALLOWANCE_BYTES / 2 + 1));
    assert(limit.maySend("192.0.2.1", ALLOWANCE_BYTES / 2));
    now += 60_000;
    assert(!limit.maySend("192.0.2.1", ALLOWANCE_BYTES + 1), "an idle minute saves one allowance");
  });
  await t.step("0 turns it off", () => {
    const limit = new AmplificationLimit(0, clock);
    for (let i = 0; i < 100; i++) assert(limit.maySend("192.0.2.1", 1_000_000));
    assertEquals(limit.size, 0);
  });
  await t.step("the table is bounded: idle addresses are forgotten, then the oldest", () => {
    const limit = new AmplificationLimit(3, clock);
    for (let i = 0; i < MAX_ADDRESSES + 500; i++) limit.received(`10.0.${i >> 8}.${i & 255}`, 28);
    assertEquals(limit.size, MAX_ADDRESSES);
    now += IDLE_MS;
    limit.received("192.0.2.9", 28);
    assertEquals(limit.size, 1);
  });
});

Deno.test("lesson 14: deno task lesson14-attack measures both ways on the wire", async () => {
  await using server = await LessonServer.start("lesson14-server");
  const port = String(server.port);
  const attack = await runTask("lesson14-attack", [
    "--port",
    port,
    "--count",
    "500",
    "--seconds",
    "0.5",
  ]);
  assertEquals(attack.code, 0, attack.stderr);
  const [sent, got, factor] = attack.stdout.trimEnd().split("\n");
  // 500 empty datagrams and one 1,000-byte insert, each with 28 bytes of headers.
  assertEquals(sent, "sent 501 datagrams, 15,028 bytes on the wire");
  const match = got.match(/^got ([\d,]+) replies, ([\d,]+) bytes on the wire, in ([\d.]+) s$/);
  if (!match) throw new Error(`no "got ..." line: ${attack.stdout}`);
  const bytes = Number(match[2].replaceAll(",", ""));
  assertEquals(bytes, Number(match[1].replaceAll(",", "")) * 1028);
  assert(bytes <= 3 * 15_028 + 64 * 1024 * Number(match[3]), got);
  assertMatch(factor, /^amplification: \d+\.\d×$/);
  // No server: one line, exit 1.
  await server.stop();
  const none = await runTask("lesson14-attack", [
    "--port",
    port,
    "--count",
    "10",
    "--seconds",
    "0.1",
  ]);
  assertEquals([none.code, none.stderr], [
    1,
    `no reply from 127.0.0.1:${port}: is lesson14-server running?\n`,
  ]);
});
