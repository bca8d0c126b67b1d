/**
 * Lesson 16: IPv4, IPv6, dual stack, the lesson's DNS server and Happy
 * Eyeballs, with the real server and client. Tests that need the IPv6
 * loopback (::1) say so and are skipped on a machine without it.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { test } from "./_checks.ts";
import {
  addressBytes,
  answerQuery,
  lessonZone,
  parseQuery,
} from "../lessons/16-ipv6-and-names/dns.ts";
import { interleave } from "../lessons/16-ipv6-and-names/eyeballs.ts";
import { familyOf } from "../lessons/16-ipv6-and-names/family.ts";
import { closeRaw, encode, LessonServer, rawConnect, readToEnd, runTask } from "./_helpers.ts";

const hasIPv6 = (() => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
})();
if (!hasIPv6) {
  console.log("lesson 16: this machine has no IPv6 loopback (::1): skipping the IPv6 tests");
}
const ipv6 = { ignore: !hasIPv6, sanitizeOps: true, sanitizeResources: true };

/**
 * A spawned-process check that needs the IPv6 loopback (exercise 16 runs
 * these too): skipped, as said above, on a machine without it.
 */
function ipv6Check(name: string, fn: () => Promise<void>): void {
  if (hasIPv6) test(name, fn);
  else Deno.test({ name, ignore: true, fn });
}

const CLIENT = "lesson16-client";
const SERVER = "lesson16-server";

/** A query for `v4.lesson16.test`, type A, ID 0x1234, written out byte by byte. */
const QUERY_V4_A = Uint8Array.from([
  0x12,
  0x34,
  0x01,
  0x00,
  0x00,
  0x01,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00, // header: RD, 1 question
  2,
  0x76,
  0x34, // "v4"
  8,
  0x6c,
  0x65,
  0x73,
  0x73,
  0x6f,
  0x6e,
  0x31,
  0x36, // "lesson16"
  4,
  0x74,
  0x65,
  0x73,
  0x74,
  0, // "test", end of name
  0x00,
  0x01,
  0x00,
  0x01, // type A, class IN
]);
/** Its answer: QR+AA+RD, 1 question, 1 answer; the question again; 127.0.0.1 for 60 s. */
const ANSWER_V4_A = Uint8Array.from([
  0x12,
  0x34,
  0x85,
  0x00,
  0x00,
  0x01,
  0x00,
  0x01,
  0x00,
  0x00,
  0x00,
  0x00,
  ...QUERY_V4_A.subarray(12),
  0xc0,
  0x0c,
  0x00,
  0x01,
  0x00,
  0x01,
  0x00,
  0x00,
  0x00,
  0x3c,
  0x00,
  0x04,
  127,
  0,
  0,
  1,
]);

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

Deno.test("lesson 16: families, address bytes and interleaving", () => {
  assertEquals(familyOf("127.0.0.1"), "IPv4");
  assertEquals(familyOf("::1"), "IPv6");
  assertEquals(familyOf("::ffff:127.0.0.1"), "IPv4-mapped");
  assertEquals([...addressBytes("127.0.0.1")], [127, 0, 0, 1]);
  assertEquals([...addressBytes("::1")], [...Array(15).fill(0), 1]);
  assertEquals([...addressBytes("::ffff:127.0.0.1")], [
    ...Array(10).fill(0),
    0xff,
    0xff,
    127,
    0,
    0,
    1,
  ]);
  assertEquals([...addressBytes("2001:db8::1")].slice(0, 4), [0x20, 0x01, 0x0d, 0xb8]);
  for (const bad of ["1.2.3", "256.0.0.1", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "x"]) {
    let threw = false;
    try {
      addressBytes(bad);
    } catch {
      threw = true;
    }
    assert(threw, bad);
  }
  assertEquals(interleave(["::1", "::2", "10.0.0.1"]), ["::1", "10.0.0.1", "::2"]);
  assertEquals(interleave(["10.0.0.1", "10.0.0.2", "::1"]), ["10.0.0.1", "::1", "10.0.0.2"]);
});

Deno.test("lesson 16: DNS answers, written out by hand", () => {
  assertEquals(parseQuery(QUERY_V4_A).name, "v4.lesson16.test");
  const { response, summary } = answerQuery(lessonZone(), QUERY_V4_A);
  assertEquals(response, ANSWER_V4_A);
  assertEquals(summary, "asked A v4.lesson16.test (34 bytes), answered 127.0.0.1 (50 bytes)");
  // The name exists but has no AAAA record: NOERROR, no answers.
  const aaaa = QUERY_V4_A.slice();
  aaaa[aaaa.length - 3] = 28;
  const noData = answerQuery(lessonZone(), aaaa).response!;
  assertEquals([...noData.subarray(2, 8)], [0x85, 0x00, 0, 1, 0, 0]);
  // An unknown name: NXDOMAIN (result code 3).
  const nx = QUERY_V4_A.slice();
  nx[13] = 0x78; // "x4.lesson16.test"
  assertEquals([...answerQuery(lessonZone(), nx).response!.subarray(2, 4)], [0x85, 0x03]);
});

Deno.test("lesson 16: malformed datagrams are ignored, with a reason", () => {
  const cases: [Uint8Array, string][] = [
    [Uint8Array.from([1, 2, 3]), "ignored 3 bytes: 3 bytes is too short for a DNS header (12)"],
    [ANSWER_V4_A, "ignored 50 bytes: it is an answer, not a question"],
    [QUERY_V4_A.subarray(0, 20), "ignored 20 bytes: the name runs past the end"],
    [QUERY_V4_A.subarray(0, 31), "ignored 31 bytes: no type and class after the name"],
    [
      Uint8Array.from([...QUERY_V4_A.subarray(0, 12), 0xc0, 0x0c, 0, 1, 0, 1]),
      "ignored 18 bytes: a label longer than 63 bytes",
    ],
  ];
  const twoQuestions = QUERY_V4_A.slice();
  twoQuestions[5] = 2;
  cases.push([twoQuestions, "ignored 34 bytes: it has 2 questions, not 1"]);
  for (const [datagram, summary] of cases) {
    const result = answerQuery(lessonZone(), datagram);
    assertEquals(result, { summary });
  }
});

Deno.test("lesson 16: IPv4 server, client by address", async () => {
  await using server = await LessonServer.start(SERVER);
  // "listening on" is the first line; the DNS line may arrive a moment later.
  assert(
    await server.waitForLine(
      `DNS on udp 127.0.0.1:${server.port}: both.lesson16.test, v4.lesson16.test, v6.lesson16.test`,
    ),
  );
  const result = await runTask(CLIENT, [
    "--port",
    String(server.port),
    "--message",
    "a",
    "--message",
    "b",
  ]);
  assertEquals(result.stderr, "");
  assertEquals(result.code, 0);
  const out = lines(result.stdout);
  const match = out[0].match(/^connected to 127\.0\.0\.1:(\d+) \(IPv4\) from 127\.0\.0\.1:(\d+)$/);
  if (!match) throw new Error(`unexpected first line: ${out[0]}`);
  assertEquals(Number(match[1]), server.port);
  const local = match[2];
  assertEquals(out.slice(1), [
    "> a",
    "> b",
    `< you are 127.0.0.1 port ${local}, IPv4`,
    `< you are 127.0.0.1 port ${local}, IPv4`,
  ]);
  assert(await server.waitForLine(`closed connection from 127.0.0.1:${local} after 2 lines`));
  assert(server.lines.includes(
    `connection from 127.0.0.1:${local} (IPv4) to 127.0.0.1:${server.port}`,
  ));
});

Deno.test({
  name: "lesson 16: IPv6-only server answers ::1 and refuses 127.0.0.1",
  ...ipv6,
  fn: async () => {
    await using server = await LessonServer.start(SERVER, ["--host", "::1"]);
    assertEquals(server.lines[0], `listening on [::1]:${server.port}`);
    const v6 = await runTask(CLIENT, ["--host", "::1", "--port", String(server.port)]);
    assertEquals(v6.code, 0, v6.stderr);
    const local = v6.stdout.match(/from \[::1\]:(\d+)\n/)![1];
    assertStringIncludes(v6.stdout, `< you are ::1 port ${local}, IPv6\n`);
    const v4 = await runTask(CLIENT, ["--port", String(server.port)]);
    assertEquals(v4.code, 1);
    assertEquals(v4.stdout, "");
    assertEquals(
      v4.stderr,
      `could not connect to 127.0.0.1:${server.port}: connection refused: is the server running? ` +
        "start it with: deno task lesson16-server\n",
    );
  },
});

Deno.test({
  name: "lesson 16: a dual-stack server (--host ::) sees IPv4 clients as ::ffff:127.0.0.1",
  ...ipv6,
  fn: async () => {
    await using server = await LessonServer.start(SERVER, ["--host", "::"]);
    assertEquals(server.lines[0], `listening on [::]:${server.port}`);
    const v4 = await runTask(CLIENT, ["--port", String(server.port)]);
    assertEquals(v4.code, 0, v4.stderr);
    const local = v4.stdout.match(/from 127\.0\.0\.1:(\d+)\n/)![1];
    assertStringIncludes(v4.stdout, `< you are ::ffff:127.0.0.1 port ${local}, IPv4-mapped\n`);
    assert(
      await server.waitForLine(
        `connection from [::ffff:127.0.0.1]:${local} (IPv4-mapped) to [::ffff:127.0.0.1]:${server.port}`,
      ),
    );
    const v6 = await runTask(CLIENT, ["--host", "::1", "--port", String(server.port)]);
    assertEquals(v6.code, 0, v6.stderr);
    assertMatch(v6.stdout, /< you are ::1 port \d+, IPv6\n/);
  },
});

Deno.test("lesson 16: the DNS server over real UDP, and it survives garbage", async () => {
  await using server = await LessonServer.start(SERVER);
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: server.port };
    const receive = async (timeoutMs: number) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<null>((resolve) =>
        timer = setTimeout(() => resolve(null), timeoutMs)
      );
      const got = await Promise.race([socket.receive().then(([data]) => data), late]);
      clearTimeout(timer);
      return got;
    };
    for (const junk of [Uint8Array.from([1, 2, 3]), ANSWER_V4_A, new Uint8Array(1000)]) {
      await socket.send(junk, to);
    }
    assert(
      await server.waitForLine(/^dns: 127\.0\.0\.1:\d+ ignored 3 bytes: 3 bytes is too short/),
    );
    assert(await server.waitForLine(/ignored 50 bytes: it is an answer, not a question$/));
    // 1,000 bytes are read as 512 at most: a zero header, no question.
    assert(await server.waitForLine(/ignored 512 bytes: it has 0 questions, not 1$/));
    // Nothing came back for the junk, and a real question is still answered.
    await socket.send(QUERY_V4_A, to);
    assertEquals(await receive(5_000), ANSWER_V4_A);
    assertEquals(await receive(200), null);
    // The pending receive ends when the socket closes below.
  } finally {
    socket.close();
  }
});

ipv6Check(
  "lesson 16: Happy Eyeballs falls back to IPv4 at once when IPv6 is refused",
  async () => {
    await using server = await LessonServer.start(SERVER);
    const p = server.port;
    const result = await runTask(CLIENT, [
      "--dns",
      "--host",
      "both.lesson16.test",
      "--port",
      String(p),
    ]);
    assertEquals(result.stderr, "");
    assertEquals(result.code, 0);
    const out = lines(result.stdout);
    const local = out[4].match(/from 127\.0\.0\.1:(\d+)$/)![1];
    assertEquals(out, [
      `both.lesson16.test resolved to ::1, 127.0.0.1 (lesson DNS server, udp 127.0.0.1:${p})`,
      `trying [::1]:${p} (IPv6)`,
      `[::1]:${p} (IPv6): connection refused`,
      `trying 127.0.0.1:${p} (IPv4)`,
      `connected to 127.0.0.1:${p} (IPv4) from 127.0.0.1:${local}`,
      "> hello",
      `< you are 127.0.0.1 port ${local}, IPv4`,
    ]);
    // The two DNS questions the client asked, one datagram each.
    assert(
      await server.waitForLine(
        /^dns: 127\.0\.0\.1:\d+ asked AAAA both\.lesson16\.test \(47 bytes\), answered ::1 \(64 bytes\)$/,
      ),
    );
    assert(
      await server.waitForLine(/asked A both\.lesson16\.test \(47 bytes\), answered 127\.0\.0\.1/),
    );

    // The trap: the first address only, and the server "is not running".
    const first = await runTask(CLIENT, [
      "--dns",
      "--host",
      "both.lesson16.test",
      "--first",
      "--port",
      String(p),
    ]);
    assertEquals(first.code, 1);
    assertEquals(lines(first.stdout).slice(1), [
      `trying [::1]:${p} (IPv6), the first address only`,
    ]);
    assertEquals(
      first.stderr,
      `could not connect to [::1]:${p}: connection refused: is the server running? ` +
        "start it with: deno task lesson16-server\n",
    );
  },
);

ipv6Check(
  "lesson 16: Happy Eyeballs starts IPv4 250 ms after a silent IPv6 attempt",
  async () => {
    await using server = await LessonServer.start(SERVER);
    const p = server.port;
    // A silent IPv6 address: a listener on [::1] that never accepts, its queue
    // filled until the kernel drops new SYNs, so a connect neither succeeds nor fails.
    const silent = Deno.listen({ hostname: "::1", port: p });
    const queued: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 5000; i++) {
        try {
          queued.push(
            await Deno.connect({ hostname: "::1", port: p, signal: AbortSignal.timeout(300) }),
          );
        } catch {
          break; // this one hung: the queue is full
        }
      }
      const started = Date.now();
      const result = await runTask(CLIENT, [
        "--dns",
        "--host",
        "both.lesson16.test",
        "--port",
        String(p),
      ]);
      const elapsed = Date.now() - started;
      assertEquals(result.stderr, "");
      assertEquals(result.code, 0);
      const out = lines(result.stdout);
      assertEquals(out.slice(1, 4), [
        `trying [::1]:${p} (IPv6)`,
        `no answer from [::1]:${p} (IPv6) after 250 ms: trying the next address too`,
        `trying 127.0.0.1:${p} (IPv4)`,
      ]);
      assertMatch(out[4], new RegExp(`^connected to 127\\.0\\.0\\.1:${p} \\(IPv4\\) from `));
      assertMatch(out[6], /^< you are 127\.0\.0\.1 port \d+, IPv4$/);
      assert(elapsed < 8_000, `took ${elapsed} ms`);
      // For the README's try 3: deno test shows this under the test's "output".
      console.log(`the client, with Happy Eyeballs:\n${result.stdout}`);

      // Without Happy Eyeballs the client waits on IPv6 until its timeout.
      const first = await runTask(CLIENT, [
        "--dns",
        "--host",
        "both.lesson16.test",
        "--first",
        "--timeout",
        "1",
        "--port",
        String(p),
      ]);
      assertEquals(first.code, 1);
      assertEquals(
        first.stderr,
        `could not connect to [::1]:${p}: no answer after 1 s: is the address right?\n`,
      );
      console.log(`the client with --first --timeout 1 (exit code 1): ${first.stderr}`);
    } finally {
      for (const conn of queued) closeRaw(conn);
      silent.close();
    }
  },
);

Deno.test("lesson 16: name errors are one line each", async () => {
  await using server = await LessonServer.start(SERVER, ["--record", "mine.test=127.0.0.1"]);
  const p = String(server.port);
  const nx = await runTask(CLIENT, ["--dns", "--host", "nope.lesson16.test", "--port", p]);
  assertEquals([nx.code, nx.stdout], [1, ""]);
  assertEquals(
    nx.stderr,
    "no such name: the lesson DNS server has no address for nope.lesson16.test\n",
  );
  // The system resolver may not look up names outside the task's --allow-net list.
  const denied = await runTask(CLIENT, ["--host", "both.lesson16.test", "--port", p]);
  assertEquals(denied.code, 1);
  assertEquals(
    denied.stderr,
    "not permitted to look up both.lesson16.test: the task's --allow-net list does not include it " +
      "(the lesson's own names need --dns)\n",
  );
  // localhost by the system resolver: whatever this machine's /etc/hosts says, it connects.
  const local = await runTask(CLIENT, ["--host", "localhost", "--port", p]);
  assertEquals(local.code, 0, local.stderr);
  assertMatch(local.stdout, /^localhost resolved to [0-9a-f:., ]+ \(system resolver\)\n/);
  // --record adds a name.
  const mine = await runTask(CLIENT, ["--dns", "--host", "MINE.test", "--port", p]);
  assertEquals(mine.code, 0, mine.stderr);
  assertStringIncludes(
    mine.stdout,
    `MINE.test resolved to 127.0.0.1 (lesson DNS server, udp 127.0.0.1:${p})\n`,
  );
});

Deno.test("lesson 16: no DNS server: the client says so instead of hanging", async () => {
  await using server = await LessonServer.start(SERVER, ["--no-dns"]);
  const started = Date.now();
  const result = await runTask(CLIENT, [
    "--dns",
    "--host",
    "v4.lesson16.test",
    "--timeout",
    "1",
    "--port",
    String(server.port),
  ]);
  assertEquals([result.code, result.stdout], [1, ""]);
  assertEquals(
    result.stderr,
    `no answer from the lesson DNS server at udp 127.0.0.1:${server.port}: is the server running ` +
      "(without --no-dns)? start it with: deno task lesson16-server\n",
  );
  assert(Date.now() - started < 8_000);
  // A second later, still no DNS line: --no-dns means no UDP socket at all.
  assertEquals(server.lines, [`listening on 127.0.0.1:${server.port}`]);
});

Deno.test("lesson 16: server errors: UDP port taken, bad --record, over-long line", async () => {
  const taken = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const result = await runTask(SERVER, ["--port", String(port)]);
    assertEquals(result.code, 1);
    assertEquals(
      result.stderr,
      `udp port ${port} on 127.0.0.1 is already in use, so the DNS server cannot start: ` +
        "is another lesson 16 server running? stop it, or add --no-dns\n",
    );
  } finally {
    taken.close();
  }
  const bad = await runTask(SERVER, ["--port", "0", "--record", "mine.test=999.1.1.1"]);
  assertEquals(bad.code, 2);
  assertEquals(bad.stderr, '--record mine.test=999.1.1.1: "999.1.1.1" is not an IP address\n');

  await using server = await LessonServer.start(SERVER);
  const conn = await rawConnect(server.port);
  try {
    await conn.write(encode("x".repeat(2000) + "\n"));
    // No answer for a line over 1 KiB: the server closes the connection.
    assertEquals((await readToEnd(conn)).length, 0);
  } finally {
    closeRaw(conn);
  }
  assert(await server.waitForLine(/after 0 lines: line is longer than the limit of 1024 bytes$/));
});
