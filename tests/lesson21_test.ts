/**
 * Lesson 21: the hand-written HTTP/1.1 server, from raw sockets (byte for
 * byte: pipelining, every error code, the traversal attempts, the time and
 * connection limits) and from curl.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { test } from "./_checks.ts";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  rawConnect,
  readExactly,
  readToEnd,
  sleep,
} from "./_helpers.ts";

const SITE = new URL("../lessons/21-http/site/", import.meta.url);
const siteFile = (name: string) => Deno.readFile(new URL(name, SITE));

/** The bytes of an answer as the lesson's server writes it (lowercase headers, in this order). */
function answer(
  status: string,
  headers: [string, string][],
  body: Uint8Array | string,
  options: { close?: boolean; head?: boolean } = {},
): Uint8Array {
  const bytes = typeof body === "string" ? encode(body) : body;
  const head = [
    `HTTP/1.1 ${status}`,
    ...headers.map(([name, value]) => `${name}: ${value}`),
    `content-length: ${bytes.length}`,
    `connection: ${options.close ? "close" : "keep-alive"}`,
  ].join("\r\n") + "\r\n\r\n";
  const out = new Uint8Array(encode(head).length + (options.head ? 0 : bytes.length));
  out.set(encode(head));
  if (!options.head) out.set(bytes, encode(head).length);
  return out;
}

const TEXT = ["content-type", "text/plain; charset=utf-8"] as [string, string];

/** A refusal: a line of text, then the server closes. */
const refusal = (status: string, message: string) =>
  answer(status, [TEXT], message + "\n", { close: true });

/** Sends `request` on a new connection and reads until the server closes it. */
async function exchange(port: number, request: string | Uint8Array): Promise<string> {
  const conn = await rawConnect(port);
  try {
    await writeAll(conn, typeof request === "string" ? encode(request) : request);
    return decode(await readToEnd(conn, 5_000));
  } finally {
    closeRaw(conn);
  }
}

test("lesson 21: pipelined requests in one packet are answered in order, byte for byte", async () => {
  await using server = await LessonServer.start("lesson21-server");
  const [page, css, logo] = await Promise.all(
    ["index.html", "style.css", "logo.svg"].map(siteFile),
  );
  const got = await exchange(
    server.port,
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
      "HEAD /style.css HTTP/1.1\r\nHost: a\r\n\r\n" +
      "GET /logo.svg HTTP/1.1\r\nHost: a\r\n\r\n" +
      "GET /style.css HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
  );
  const expected = [
    answer("200 OK", [["content-type", "text/html; charset=utf-8"]], page),
    answer("200 OK", [["content-type", "text/css; charset=utf-8"]], css, { head: true }),
    answer("200 OK", [["content-type", "image/svg+xml"]], logo),
    answer("200 OK", [["content-type", "text/css; charset=utf-8"]], css, { close: true }),
  ].map(decode).join("");
  assertEquals(got, expected);
});

test("lesson 21: keep-alive across packets, HTTP/1.0 closes, 404 and 405 keep the connection", async () => {
  await using server = await LessonServer.start("lesson21-server");
  const conn = await rawConnect(server.port);
  try {
    const notFound = answer("404 Not Found", [TEXT], "no such file\n");
    await writeAll(conn, encode("GET /nope.html HTTP/1.1\r\nHost: a\r\n\r\n"));
    assertEquals(decode(await readExactly(conn, notFound.length)), decode(notFound));
    const notAllowed = answer(
      "405 Method Not Allowed",
      [TEXT, ["allow", "GET, HEAD"]],
      "DELETE is not allowed here: GET or HEAD\n",
    );
    await writeAll(conn, encode("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assertEquals(decode(await readExactly(conn, notAllowed.length)), decode(notAllowed));
    // The same connection still works; HTTP/1.0 gets its answer, then the close.
    await writeAll(conn, encode("GET /style.css HTTP/1.0\r\n\r\n"));
    const css = await siteFile("style.css");
    assertEquals(
      decode(await readToEnd(conn, 5_000)),
      decode(answer("200 OK", [["content-type", "text/css; charset=utf-8"]], css, { close: true })),
    );
  } finally {
    closeRaw(conn);
  }
});

test("lesson 21: bodies by Content-Length and by chunks reach /echo as sent", async () => {
  await using server = await LessonServer.start("lesson21-server");
  const chunked = await exchange(
    server.port,
    "POST /echo?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
      "5;note=first\r\nhello\r\n8\r\n, Grüß\r\n0\r\nTrailer-Thing: x\r\n\r\n",
  );
  const body = chunked.slice(chunked.indexOf("\r\n\r\n") + 4);
  assertEquals(
    body,
    '{\n  "method": "POST",\n  "target": "/echo?x=1",\n  "version": "HTTP/1.1",\n' +
      '  "headers": [\n    ["Host", "h"],\n    ["Transfer-Encoding", "chunked"],\n' +
      '    ["Connection", "close"]\n  ],\n  "bodyBytes": 13,\n  "body": "hello, Grüß"\n}\n',
  );
  // Content-Length counts bytes: "Grüß" is 4 characters and 6 bytes.
  const byLength = await exchange(
    server.port,
    "PUT /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nConnection: close\r\n\r\nGrüß",
  );
  assertStringIncludes(byLength, '"bodyBytes": 6,\n  "body": "Grüß"\n');
  // The same length twice is allowed (RFC 9112 section 6.3).
  const twice = await exchange(
    server.port,
    "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n" +
      "Connection: close\r\n\r\nhi",
  );
  assertStringIncludes(twice, '"body": "hi"');
});

test("lesson 21: every refusal, byte for byte, and the connection closes after it", async (t) => {
  await using server = await LessonServer.start("lesson21-server");
  const cases: [string, string, Uint8Array][] = [
    [
      "garbage",
      "hello\r\n\r\n",
      refusal("400 Bad Request", "the request line is not METHOD TARGET HTTP/x.y"),
    ],
    [
      "HTTP/2.0",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      refusal(
        "505 HTTP Version Not Supported",
        "HTTP/2.0 is not spoken here: HTTP/1.1 or HTTP/1.0",
      ),
    ],
    ["no Host", "GET / HTTP/1.1\r\n\r\n", refusal("400 Bad Request", "no Host header")],
    [
      "two Hosts",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      refusal("400 Bad Request", "more than one Host header"),
    ],
    [
      "a folded header",
      "GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
      refusal("400 Bad Request", "a folded header line"),
    ],
    [
      "a space before the colon",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
      refusal("400 Bad Request", "a header line is not Name: value"),
    ],
    [
      "both lengths",
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      refusal("400 Bad Request", "both Transfer-Encoding and Content-Length"),
    ],
    [
      "two Content-Lengths",
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
      refusal("400 Bad Request", "two different Content-Length values"),
    ],
    [
      "a negative length",
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      refusal("400 Bad Request", "Content-Length is not a number"),
    ],
    [
      "gzip, chunked",
      "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      refusal("400 Bad Request", 'Transfer-Encoding "gzip, chunked": only chunked is read'),
    ],
    [
      "a bad chunk size",
      "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      refusal("400 Bad Request", "a chunk size is not hexadecimal"),
    ],
    [
      "a chunk longer than its size",
      "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
      refusal("400 Bad Request", "a chunk is longer than its size"),
    ],
    [
      "a body over the limit",
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n",
      refusal("413 Content Too Large", "a body of 65537 bytes: the limit is 65536"),
    ],
    [
      "chunks over the limit",
      "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8000\r\n" +
      "x".repeat(0x8000) + "\r\n8001\r\n",
      refusal("413 Content Too Large", "a chunked body over 65536 bytes"),
    ],
    [
      "a line of 8 KiB + 1",
      `GET /${"a".repeat(8192 - 13)} HTTP/1.1\r\n\r\n`,
      refusal("431 Request Header Fields Too Large", "a line is longer than 8192 bytes"),
    ],
    [
      "101 headers",
      "GET / HTTP/1.1\r\nHost: a\r\n" + "X: y\r\n".repeat(100) + "\r\n",
      refusal("431 Request Header Fields Too Large", "more than 100 headers"),
    ],
    [
      "a head over 16 KiB",
      "GET / HTTP/1.1\r\nHost: a\r\n" + `X: ${"y".repeat(8000)}\r\n`.repeat(3) + "\r\n",
      refusal("431 Request Header Fields Too Large", "the head is longer than 16384 bytes"),
    ],
  ];
  for (const [name, request, expected] of cases) {
    await t.step(name, async () => {
      assertEquals(await exchange(server.port, request), decode(expected));
    });
  }
  await t.step("a line of exactly 8 KiB is fine", async () => {
    const got = await exchange(
      server.port,
      `GET /${"a".repeat(8192 - 14)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
    );
    assertMatch(got, /^HTTP\/1\.1 404 Not Found\r\n/);
  });
  await t.step("a request that ends after its refusal is never read", async () => {
    // The smuggled second request inside the "body" gets no answer of its own.
    const got = await exchange(
      server.port,
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "0\r\n\r\nGET /secret HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assertEquals(
      got,
      decode(refusal("400 Bad Request", "both Transfer-Encoding and Content-Length")),
    );
  });
});

test("lesson 21: no path leaves the site folder", async (t) => {
  await using server = await LessonServer.start("lesson21-server");
  const forbidden = decode(
    answer("403 Forbidden", [TEXT], "that path is not in the site\n", { close: true }),
  );
  const notFound = decode(answer("404 Not Found", [TEXT], "no such file\n", { close: true }));
  const attempts: [string, string][] = [
    ["/../../etc/passwd", forbidden],
    ["/../../../../../../etc/passwd", forbidden],
    ["/%2e%2e/%2e%2e/etc/passwd", forbidden],
    ["/%2E%2E/%2E%2E/etc/passwd", forbidden],
    ["/..%2f..%2f..%2fetc/passwd", forbidden],
    ["/..%5c..%5cserver.ts", forbidden],
    ["/style.css%00.html", forbidden],
    ["/../server.ts", forbidden],
    ["/etc/passwd", notFound],
    ["//etc/passwd", notFound],
    ["/%zz", notFound],
    // A name longer than the system allows (it once crashed the server).
    [`/${"a".repeat(5000)}`, notFound],
  ];
  for (const [target, expected] of attempts) {
    await t.step(target, async () => {
      const got = await exchange(
        server.port,
        `GET ${target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
      );
      assertEquals(got, expected);
    });
  }
  await t.step("an absolute URL as the target is refused", async () => {
    const got = await exchange(
      server.port,
      "GET http://a/etc/passwd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assertEquals(
      got,
      decode(answer("400 Bad Request", [TEXT], "the target must start with /\n", { close: true })),
    );
  });
});

test("lesson 21: slow heads and bodies get 408, quiet kept-alive connections are closed", async () => {
  await using server = await LessonServer.start("lesson21-server", [
    "--header-timeout",
    "0.5",
    "--body-timeout",
    "0.5",
    "--idle-timeout",
    "0.5",
  ]);
  // A body that never comes whole.
  const slowBody = await exchange(
    server.port,
    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab",
  );
  assertEquals(slowBody, decode(refusal("408 Request Timeout", "the body took too long")));
  // Slowloris: half a head, then nothing.
  const started = performance.now();
  const slow = await exchange(server.port, "GET / HTTP/1.1\r\nHost: a\r\n");
  assertEquals(slow, decode(refusal("408 Request Timeout", "the head took too long")));
  const took = performance.now() - started;
  assert(took >= 400 && took < 4_000, `took ${took} ms`);
  // One byte at a time does not reset the head's deadline.
  const conn = await rawConnect(server.port);
  try {
    const dripStart = performance.now();
    for (const byte of encode("GET / HTTP/1.1\r\n")) {
      try {
        await conn.write(new Uint8Array([byte]));
      } catch {
        break; // closed: the deadline passed
      }
      await sleep(100);
    }
    assertStringIncludes(decode(await readToEnd(conn, 5_000)), "HTTP/1.1 408 Request Timeout\r\n");
    assert(performance.now() - dripStart < 4_000);
  } finally {
    closeRaw(conn);
  }
  // Idle: after an answer, a quiet connection is closed with no word.
  const idle = await rawConnect(server.port);
  try {
    await writeAll(idle, encode("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"));
    const got = decode(await readToEnd(idle, 5_000));
    assertEquals(got, decode(answer("404 Not Found", [TEXT], "no such file\n")));
  } finally {
    closeRaw(idle);
  }
  await server.stop("SIGINT");
  assertMatch(
    server.lines.at(-1)!,
    /^served 1 request on 4 connections \(3 timed out, 1 closed for idling\), \d+ bytes out$/,
  );
});

test("lesson 21: over --max-connections a client gets 503; Ctrl-C prints a summary", async () => {
  await using server = await LessonServer.start("lesson21-server", ["--max-connections", "1"]);
  const held = await rawConnect(server.port);
  try {
    await writeAll(held, encode("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"));
    await readExactly(held, answer("404 Not Found", [TEXT], "no such file\n").length);
    const turned = await exchange(server.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assertEquals(
      turned,
      decode(refusal("503 Service Unavailable", "too many connections: try again later")),
    );
  } finally {
    closeRaw(held);
  }
  await sleep(100);
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0);
  const bytes = answer("404 Not Found", [TEXT], "no such file\n").length;
  assertEquals(
    server.lines.slice(-2),
    ["shutting down", `served 1 request on 1 connection (1 turned away), ${bytes} bytes out`],
  );
});

// Deno.test, not test: the exercise runner may not run curl (its permissions), and
// the raw-socket checks above judge an exercise already.
Deno.test("lesson 21: curl gets the site over one connection, and the echo of what it sent", async () => {
  await using server = await LessonServer.start("lesson21-server");
  const base = `http://127.0.0.1:${server.port}`;
  const curl = await new Deno.Command("curl", {
    args: ["-sS", "-v", "--max-time", "10", `${base}/`, `${base}/style.css`, `${base}/logo.svg`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(curl.code, 0, decode(curl.stderr));
  const [page, css, logo] = await Promise.all(
    ["index.html", "style.css", "logo.svg"].map(siteFile),
  );
  assertEquals(decode(curl.stdout), decode(page) + decode(css) + decode(logo));
  const verbose = decode(curl.stderr);
  // One TCP connection for the three (curl says so), and the content types.
  assertEquals(verbose.match(/Re-using existing connection/g)?.length, 2, verbose);
  assertStringIncludes(verbose, "< content-type: image/svg+xml");
  const post = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "10", "--data-binary", "Grüße", `${base}/echo`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(post.code, 0);
  const echoed = JSON.parse(decode(post.stdout));
  assertEquals([echoed.method, echoed.bodyBytes, echoed.body], ["POST", 7, "Grüße"]);
  assertEquals(echoed.headers[0], ["Host", `127.0.0.1:${server.port}`]);
});

test("lesson 21: clients pipelining thousands of requests do not stall a polite one", async () => {
  await using server = await LessonServer.start("lesson21-server", ["--quiet"]);
  const burst = encode("GET /style.css HTTP/1.1\r\nHost: a\r\n\r\n".repeat(1000));
  const flooders = await Promise.all([1, 2, 3, 4].map(() => rawConnect(server.port)));
  let stop = false;
  const floods = flooders.flatMap((conn) => [
    (async () => {
      while (!stop) await writeAll(conn, burst);
    })().catch(() => {}),
    (async () => {
      const sink = new Uint8Array(64 * 1024);
      while (!stop && (await conn.read(sink)) !== null) { /* discard */ }
    })().catch(() => {}),
  ]);
  try {
    await sleep(500); // the flood is on
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const got = await exchange(
        server.port,
        "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
      );
      times.push(performance.now() - started);
      assertMatch(got, /^HTTP\/1\.1 404 Not Found\r\n/);
    }
    times.sort((a, b) => a - b);
    // Without turns, each took 600 ms or more; with them, about 20 ms.
    assert(times[2] < 250, `a polite request took ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
  } finally {
    stop = true;
    for (const conn of flooders) closeRaw(conn);
    await Promise.all(floods);
  }
});
