/**
 * Lesson 18: lesson 05's line service over TLS, each failure mode and its
 * one-line message, STARTTLS, and a client that is not Deno's TLS at all
 * (`openssl s_client`).
 *
 * The certificates are made for this test, by the lesson's own certs task,
 * in a fresh folder under lessons/18-tls/certs (the only folder the tasks
 * may read), and removed at the end: a learner's certificates are never
 * used or touched. What a certificate holds is checked with openssl, not
 * with the lesson's code.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  rawConnect,
  readExactly,
  readToEnd,
  runTask,
} from "./_helpers.ts";
import { test } from "./_checks.ts";
import { programsRoot } from "../tools/lesson_process.ts";
import { HandOvers } from "../lessons/18-tls/server.ts";

const CERTS = "lessons/18-tls/certs";
/** This test's certificate folder, made by the first test that needs it. */
let DIR = "";
/** Where the programs ran when DIR was made (the exercise runner uses a copy each time). */
let madeFor = "";
let certs: Awaited<ReturnType<typeof runTask>> | undefined;

async function makeCerts(): Promise<void> {
  if (DIR && madeFor === programsRoot().href) return;
  // A fresh name; the certs task makes the folder, where the programs run.
  DIR = `${CERTS}/test-${crypto.randomUUID().slice(0, 8)}`;
  madeFor = programsRoot().href;
  certs = await runTask("lesson18-certs", ["--out", DIR]);
  assertEquals([certs.code, certs.stderr], [0, ""]);
}

// Whatever happens (a failure, a --filter), the folder goes at the end. (In the
// exercise runner it is in the scratch copy, which goes with it.)
globalThis.addEventListener("unload", () => {
  if (DIR) {
    try {
      Deno.removeSync(DIR, { recursive: true });
    } catch {
      // not here: made in the exercise runner's copy
    }
  }
});

const LINES = ["--message", "Hello", "--message", "wörld 🌮"];
const ANSWERS = "< 1: olleH\n< 2: 🌮 dlröw\n";
const CA_NAME = "CN=Deno Socket Lessons 18 CA";

/** What the client prints once the handshake has verified `name`. */
function verified(name: string): string {
  return `TLS: verified the server's certificate for "${name}"\n` +
    "  subject: CN=localhost\n" +
    `  issuer:  ${CA_NAME} (trusted: ${DIR}/ca.crt)\n` +
    "  names:   localhost, 127.0.0.1, ::1\n" +
    "  valid:   now, and for 30 more days\n" +
    "  ALPN:    lines\n";
}

async function server(args: string[] = []): Promise<LessonServer> {
  await makeCerts();
  return await LessonServer.start("lesson18-server", ["--certs", DIR, ...args]);
}

async function client(port: number, args: string[], options: { stdin?: string } = {}) {
  await makeCerts();
  return await runTask("lesson18-client", [
    "--port",
    String(port),
    "--ca",
    `${DIR}/ca.crt`,
    ...args,
  ], {
    timeoutMs: 20_000,
    ...options,
  });
}

/** Runs openssl with `args` (and `stdin`), killed after 10 s. */
async function openssl(args: string[], stdin = ""): Promise<{ code: number; out: string }> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  try {
    const writer = child.stdin.getWriter();
    await writer.write(encode(stdin)).catch(() => {});
    await writer.close().catch(() => {});
    const output = await child.output();
    return { code: output.code, out: decode(output.stdout) + decode(output.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("lesson 18: the certs task makes a CA and the certificates it promises", async () => {
  await makeCerts();
  assertEquals(certs!.stdout.split("\n").length, 4); // three lines, each naming what it made
  const text = async (file: string) =>
    (await openssl(["x509", "-in", `${DIR}/${file}`, "-noout", "-text"])).out;

  const ca = await text("ca.crt");
  assertStringIncludes(ca, "Subject: CN = Deno Socket Lessons 18 CA");
  assertStringIncludes(ca, "CA:TRUE");

  const leaf = await text("server.crt");
  assertStringIncludes(leaf, "Issuer: CN = Deno Socket Lessons 18 CA");
  assertStringIncludes(leaf, "CA:FALSE");
  assertStringIncludes(leaf, "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
  const verify = await openssl(["verify", "-CAfile", `${DIR}/ca.crt`, `${DIR}/server.crt`]);
  assertEquals([verify.code, verify.out], [0, `${DIR}/server.crt: OK\n`]);

  assertStringIncludes(await text("expired.crt"), "Not After : Jan 31 00:00:00 2020 GMT");
  const noSan = await text("no-san.crt");
  assertStringIncludes(noSan, "CA:FALSE");
  assertEquals(noSan.includes("Subject Alternative Name"), false);

  // The private keys are for this user only.
  assertEquals((await Deno.stat(`${DIR}/server.key`)).mode! & 0o777, 0o600);
  assertEquals((await Deno.stat(`${DIR}/ca.key`)).mode! & 0o777, 0o600);
});

Deno.test("lesson 18: lesson 05's lines over TLS, verified with the lesson's CA", async (t) => {
  await using tls = await server();

  await t.step("the client prints what it verified, then lesson 05's answers", async () => {
    const result = await client(tls.port, LINES);
    assertEquals([result.code, result.stderr], [0, ""]);
    assertEquals(result.stdout, "> Hello\n> wörld 🌮\n" + verified("127.0.0.1") + ANSWERS);
  });

  await t.step("by name: localhost is one of the certificate's names", async () => {
    const result = await client(tls.port, ["--host", "localhost", "--message", "Hi"]);
    assertEquals([result.code, result.stdout], [0, "> Hi\n" + verified("localhost") + "< 1: iH\n"]);
  });

  for (const mode of ["--split", "--burst"]) {
    await t.step(`${mode}: framing works over TLS as over TCP`, async () => {
      const result = await client(tls.port, [...LINES, mode]);
      assertEquals([result.code, result.stdout.split("\n").slice(-3).join("\n")], [0, ANSWERS]);
    });
  }

  await t.step("the server logs each client's ALPN protocol", async () => {
    assert(await tls.waitForLine(/after 2 messages$/));
    const lines = tls.lines.filter((line) => line.startsWith("TLS with"));
    assertEquals(lines.length, 4);
    for (const line of lines) {
      assertMatch(line, /^TLS with 127\.0\.0\.1:\d+: ALPN protocol "lines"$/);
    }
  });
});

Deno.test("lesson 18: each failure is one line, and the server serves on", async (t) => {
  await using tls = await server();
  const fails = async (args: string[], stderr: string, log: RegExp) => {
    const result = await client(tls.port, ["--message", "Hi", ...args]);
    assertEquals([result.code, result.stdout, result.stderr], [1, "> Hi\n", stderr]);
    assert(await tls.waitForLine(log), tls.lines.join("\n"));
  };
  const start = `TLS handshake with 127.0.0.1:${tls.port} failed: `;

  await t.step("unknown issuer: the lesson's CA is not trusted", async () => {
    await fails(
      ["--no-ca"],
      start + "invalid peer certificate: UnknownIssuer (the certificate is signed by a CA " +
        "this client does not trust: --ca names the CA)\n",
      /after 0 messages: TLS handshake failed: received fatal alert: UnknownCA \(/,
    );
  });

  await t.step("wrong name: the certificate does not hold it", async () => {
    await fails(
      ["--name", "example.com"],
      `TLS handshake with example.com at 127.0.0.1:${tls.port} failed: invalid peer ` +
        'certificate: certificate not valid for name "example.com"; certificate is only valid ' +
        'for DnsName("localhost"), IpAddress(127.0.0.1) or IpAddress(0::1) (the name we asked ' +
        "for is not among the certificate's names)\n",
      /TLS handshake failed: received fatal alert: BadCertificate/,
    );
  });

  await t.step("a plain TCP client gets a TLS alert, and the server logs why", async () => {
    const conn = await rawConnect(tls.port);
    try {
      await conn.write(encode("Hello\n"));
      // An alert record: type 21, TLS 1.2 framing, 2 bytes: fatal (2), decode_error (50).
      assertEquals([...await readToEnd(conn, 5_000)], [0x15, 3, 3, 0, 2, 2, 50]);
    } finally {
      closeRaw(conn);
    }
    assert(
      await tls.waitForLine(
        /after 0 messages: TLS handshake failed: received corrupt message of type InvalidContentType/,
      ),
    );
  });

  await t.step("a client that never starts the handshake does not hold up others", async () => {
    const silent = await rawConnect(tls.port);
    try {
      const result = await client(tls.port, ["--message", "Hi"]);
      assertEquals([result.code, result.stdout.split("\n").at(-2)], [0, "< 1: iH"]);
    } finally {
      closeRaw(silent);
    }
  });

  await t.step("after all that, the server still answers", async () => {
    const result = await client(tls.port, LINES);
    assertEquals([result.code, result.stdout.endsWith(ANSWERS)], [0, true]);
    assertEquals(tls.stderr, "");
  });
});

Deno.test("lesson 18: certificates the client must refuse", async (t) => {
  const cases: [string, string[], string, RegExp][] = [
    [
      "expired",
      ["--cert", "expired"],
      "invalid peer certificate: certificate expired on 2020-01-31 (the certificate's " +
      "validity has ended: the server needs a new one)",
      /received fatal alert: CertificateExpired/,
    ],
    [
      "no subjectAltName",
      ["--cert", "no-san"],
      'invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is ' +
      "not valid for any names (according to its subjectAltName extension) (it has no " +
      "subjectAltName, and rustls never looks at the CN)",
      /received fatal alert: BadCertificate/,
    ],
    [
      "a CA as the server's own certificate",
      ["--cert", "ca"],
      "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity)) (the server sent a CA " +
      "certificate (CA:TRUE) as its own)",
      /received fatal alert: CertificateUnknown/,
    ],
  ];
  for (const [name, args, error, log] of cases) {
    await t.step(name, async () => {
      await using tls = await server(args);
      const result = await client(tls.port, ["--message", "Hi"]);
      assertEquals([result.code, result.stdout, result.stderr], [
        1,
        "> Hi\n",
        `TLS handshake with 127.0.0.1:${tls.port} failed: ${error}\n`,
      ]);
      assert(await tls.waitForLine(log), tls.lines.join("\n"));
    });
  }
});

test("lesson 18: STARTTLS: plain text first, then TLS on the same connection", async (t) => {
  await using plain = await server(["--starttls"]);

  await t.step("the client asks, the server goes ahead, TLS verifies", async () => {
    const result = await client(plain.port, ["--starttls", ...LINES]);
    assertEquals([result.code, result.stderr], [0, ""]);
    assertEquals(
      result.stdout,
      "> Hello\n> wörld 🌮\n" +
        "plain < 220 lesson18 ready: say STARTTLS to switch to TLS\n" +
        "plain > STARTTLS\nplain < 220 go ahead\n" + verified("127.0.0.1") + ANSWERS,
    );
    // The TLS side logs the real client, not the server's own hand-over connection.
    assert(await plain.waitForLine(/after 2 messages$/));
    const peer = plain.lines.map((line) => line.match(/^STARTTLS from (\S+):/)?.[1]).find(Boolean);
    assertEquals(plain.lines.slice(1), [
      `STARTTLS from ${peer}: handing the connection to the TLS listener`,
      `connection from ${peer}`,
      `TLS with ${peer}: ALPN protocol "lines"`,
      `closed connection from ${peer} after 2 messages`,
    ]);
  });

  await t.step("a TLS client on the plain-text port: one line on each side", async () => {
    const result = await client(plain.port, ["--message", "Hi"]);
    assertEquals([result.code, result.stderr], [
      1,
      `TLS handshake with 127.0.0.1:${plain.port} failed: received corrupt message of type ` +
      "InvalidContentType (the other side does not speak TLS here: plain text?)\n",
    ]);
    assert(await plain.waitForLine(/: it began with a TLS handshake$/));
  });

  await t.step("anything but STARTTLS is refused in plain text", async () => {
    const conn = await rawConnect(plain.port);
    try {
      await conn.write(encode("HELLO\n"));
      assertEquals(
        decode(await readToEnd(conn, 5_000)),
        "220 lesson18 ready: say STARTTLS to switch to TLS\n530 say STARTTLS first\n",
      );
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("text sent after STARTTLS, before TLS, goes to TLS and is refused", async () => {
    const conn = await rawConnect(plain.port);
    try {
      // The injection attack: a command sneaked in after STARTTLS, in plain text.
      await conn.write(encode("STARTTLS\nHELLO\n"));
      const reply = await readToEnd(conn, 5_000);
      const text = "220 lesson18 ready: say STARTTLS to switch to TLS\n220 go ahead\n";
      assertEquals(decode(reply.subarray(0, text.length)), text);
      assertEquals([...reply.subarray(text.length)], [0x15, 3, 3, 0, 2, 2, 50]); // a TLS alert
    } finally {
      closeRaw(conn);
    }
    assert(await plain.waitForLine(/TLS handshake failed: received corrupt message/));
  });

  await t.step("STARTTLS ending in CR LF goes ahead too", async () => {
    const conn = await rawConnect(plain.port);
    try {
      await conn.write(encode("STARTTLS\r\n"));
      const text = "220 lesson18 ready: say STARTTLS to switch to TLS\n220 go ahead\n";
      assertEquals(decode(await readExactly(conn, encode(text).length, 5_000)), text);
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("a command line over 64 bytes is cut off, not waited for", async () => {
    const conn = await rawConnect(plain.port);
    try {
      await conn.write(encode("S".repeat(100))); // no LF: the server must not wait for one
      assertEquals(
        decode(await readToEnd(conn, 5_000)),
        "220 lesson18 ready: say STARTTLS to switch to TLS\n",
      );
    } finally {
      closeRaw(conn);
    }
    assert(await plain.waitForLine(/: the client sent a line longer than 64 bytes$/));
  });

  await t.step("a STARTTLS client on a TLS port gets no greeting: one line", async () => {
    await using tls = await server();
    const result = await client(tls.port, ["--starttls", "--timeout", "1", "--message", "Hi"]);
    assertEquals([result.code, result.stdout], [1, "> Hi\n"]);
    assertEquals(result.stderr.split("\n").length, 2);
    assertStringIncludes(result.stderr, "1 s");
  });
});

Deno.test("lesson 18: openssl s_client (not Deno's TLS) talks to the server", async () => {
  await using tls = await server();
  const args = ["s_client", "-connect", `127.0.0.1:${tls.port}`, "-CAfile", `${DIR}/ca.crt`];
  const checks = ["-verify_return_error", "-verify_ip", "127.0.0.1", "-alpn", "lines"];
  // -ign_eof: keep reading after our input ends, until the server closes (after /bye).
  const result = await openssl([...args, ...checks, "-brief", "-ign_eof"], "Hello\n/bye\n");
  assertEquals(result.code, 0, result.out);
  for (const line of ["Verification: OK", "Peer certificate: CN = localhost", "1: olleH", "bye"]) {
    assert(result.out.split("\n").includes(line), `${line} in:\n${result.out}`);
  }
  assertMatch(result.out, /^Protocol version: TLSv1\.[23]$/m);
  assert(await tls.waitForLine(/^closed connection from 127\.0\.0\.1:\d+ after 1 message$/));
  assertEquals(tls.lines.filter((l) => l.endsWith('ALPN protocol "lines"')).length, 1);

  // Without the CA, openssl refuses too: the server's certificate is only as good as its CA.
  const untrusted = await openssl([...args.slice(0, 3), "-verify_return_error", "-brief"], "");
  assert(untrusted.code !== 0);
  assertStringIncludes(untrusted.out, "unable to get local issuer certificate");
});

Deno.test("lesson 18: missing certificates are one line that says how to make them", async () => {
  await makeCerts();
  const missing = `${DIR}/nothing-here`;
  const result = await runTask("lesson18-server", ["--port", "0", "--certs", missing]);
  assertEquals([result.code, result.stdout, result.stderr], [
    1,
    "",
    `no certificate at ${missing}/server.crt: make it with: deno task lesson18-certs\n`,
  ]);
  const noCa = await runTask("lesson18-client", ["--ca", `${missing}/ca.crt`, "--message", "x"]);
  assertEquals([noCa.code, noCa.stderr], [
    1,
    `no CA certificate at ${missing}/ca.crt: make it with: deno task lesson18-certs\n`,
  ]);
  // The bench reads lessons/18-tls/certs from where it runs: from elsewhere, there are none.
  const bench = await new Deno.Command("deno", {
    args: ["run", "--no-prompt", "--allow-read=.", `${Deno.cwd()}/lessons/18-tls/bench.ts`],
    cwd: missing.replace(/\/nothing-here$/, ""),
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals([bench.code, new TextDecoder().decode(bench.stderr)], [
    1,
    "no CA certificate at lessons/18-tls/certs/ca.crt: make it with: deno task lesson18-certs\n",
  ]);
  const bad = await runTask("lesson18-server", ["--certs", DIR, "--cert", "self-made"]);
  assertEquals([bad.code, bad.stderr], [2, "--cert must be one of server, expired, no-san, ca\n"]);
});

Deno.test("lesson 18: STARTTLS hand-overs: only a connect in flight is waited for", async () => {
  // A plain TCP listener stands in for the private TLS port.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handOvers = new HandOvers();
  const client: Deno.NetAddr = { transport: "tcp", hostname: "192.0.2.7", port: 4242 };

  // A hand-over: accepted, and claimed by the client behind it.
  const [tls, accepted] = await Promise.all([
    handOvers.connect(listener.addr, client),
    listener.accept(),
  ]);
  assertEquals(await handOvers.take(accepted.remoteAddr.port), client);

  // A stranger (no hand-over in flight): not claimed, and not waited on.
  const stranger = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const unclaimed = await listener.accept();
  const started = Date.now();
  assertEquals(await handOvers.take(unclaimed.remoteAddr.port), undefined);
  const waited = Date.now() - started;
  assert(waited < 200, `waited ${waited} ms`);
  [tls, accepted, stranger, unclaimed].forEach(closeRaw);
});

Deno.test("lesson 18: a silent client is really closed after --idle-timeout, and frees its slot", async () => {
  await using tls = await server(["--idle-timeout", "1", "--max-connections", "1"]);
  const silent = await rawConnect(tls.port);
  try {
    // No ClientHello at all. EOF (or a reset) within 5 s: the socket is closed, not forgotten.
    const started = Date.now();
    const got = await readToEnd(silent, 5_000).catch((error) => {
      if (error instanceof Deno.errors.ConnectionReset) return new Uint8Array(0);
      throw error;
    });
    assertEquals(got.length, 0);
    const waited = Date.now() - started;
    assert(waited >= 900, `closed after ${waited} ms`);
  } finally {
    closeRaw(silent);
  }
  // The one slot is free again: a real client is served.
  const result = await client(tls.port, LINES);
  assertEquals([result.code, result.stdout.endsWith(ANSWERS)], [0, true]);
});

Deno.test("lesson 18: half-handshakes the moment it listens, with few descriptors, do not crash Deno", async () => {
  // Each TLS client costs the server 3 descriptors (its plain connection, and
  // both ends of the one to the TLS listener). If the crowd takes them all
  // before Deno sets up its signal handling, Deno 2.9 panics (lib/signals.ts).
  await makeCerts();
  await using tls = await LessonServer.start("lesson18-server", ["--certs", DIR], 20_000, {
    maxOpenFiles: 128,
  });
  const tries = await Promise.allSettled(Array.from({ length: 150 }, () => rawConnect(tls.port)));
  const crowd = tries.flatMap((t) => t.status === "fulfilled" ? [t.value] : []);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assertEquals(await tls.waitForExit(100), false, `the server died: ${tls.stderr}`);
  } finally {
    crowd.forEach(closeRaw);
  }
  assert(!tls.stderr.includes("panicked"), tls.stderr);
});

Deno.test("lesson 18: try 5, a CA made again: BadSignature and DecryptError, each with its hint", async () => {
  await makeCerts();
  // A second run of the certs task: a new CA with the same name, and a new key.
  const again = await Deno.makeTempDir({ dir: CERTS, prefix: "test-again-" });
  try {
    const made = await runTask("lesson18-certs", ["--out", again]);
    assertEquals(made.code, 0);
    await using tls = await server(); // still the old certificate
    const result = await runTask("lesson18-client", [
      "--port",
      String(tls.port),
      "--ca",
      `${again}/ca.crt`,
      ...LINES,
    ], { timeoutMs: 20_000 });
    assertEquals(result.code, 1);
    assertStringIncludes(
      result.stderr,
      "invalid peer certificate: BadSignature (the CA this client trusts has the issuer's name " +
        "but not its key: was the CA made again? restart the server with a certificate from the " +
        "new CA)",
    );
    assert(
      await tls.waitForLine(
        /received fatal alert: DecryptError \(the client could not check our certificate's signature: it trusts another CA of the same name \(a new ca\.crt\?\)\)$/,
      ),
      tls.lines.join("\n"),
    );
  } finally {
    await Deno.remove(again, { recursive: true });
  }
});
