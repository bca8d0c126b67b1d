/**
 * Lesson 21's client against real servers: the course's own, Deno.serve,
 * node:http (run by Node) and Python's http.server, each started here on a
 * free loopback port and stopped at the end; and against a raw server that
 * frames its answer by closing, lies about its length, or says nothing.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { ChildProgram } from "../lessons/20-redis-chat/cluster.ts";
import { closeRaw, LessonServer, runTask } from "./_helpers.ts";

const SITE = new URL("../lessons/21-http/site/", import.meta.url);
const siteText = (name: string) => Deno.readTextFile(new URL(name, SITE));

/** Starts a program that prints a line with its port; returns it and the port. */
async function startProgram(
  program: string,
  args: string[],
  pattern: RegExp,
): Promise<{ child: ChildProgram; port: number }> {
  const child = new ChildProgram(program, args);
  const line = await child.waitForLine(pattern, 20_000);
  if (line === undefined) {
    await child.stop("SIGKILL");
    throw new Error(`${program} did not start: ${child.lines.join("\n")}`);
  }
  return { child, port: Number(line.match(pattern)![1]) };
}

/** A server on a raw socket: reads a request head, writes `answer`, then closes (or holds). */
function rawServer(answer: string | null): { port: number; stop: () => Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buffer = new Uint8Array(16 * 1024);
        let text = "";
        try {
          while (!text.includes("\r\n\r\n")) {
            const n = await conn.read(buffer);
            if (n === null) return;
            text += new TextDecoder().decode(buffer.subarray(0, n));
          }
          if (answer === null) return await conn.read(buffer).then(() => {}); // say nothing
          await conn.write(new TextEncoder().encode(answer));
        } catch {
          // the client went away
        } finally {
          conns.delete(conn);
          closeRaw(conn);
        }
      })();
    }
  })();
  return {
    port: listener.addr.port,
    stop: async () => {
      listener.close();
      for (const conn of conns) closeRaw(conn);
      await serving;
    },
  };
}

Deno.test("lesson 21 client: the course's server, three URLs over one connection, -i, -d, exit 22", async () => {
  await using server = await LessonServer.start("lesson21-server");
  const base = `http://127.0.0.1:${server.port}`;
  const result = await runTask("lesson21-client", [
    `${base}/`,
    `${base}/style.css`,
    `${base}/logo.svg`,
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(
    result.stdout,
    (await siteText("index.html")) + (await siteText("style.css")) + (await siteText("logo.svg")),
  );
  // The server saw the three on one connection (one client port).
  const ports = server.lines.filter((line) => / GET \//.test(line)).map((line) =>
    line.split(" ")[0]
  );
  assertEquals(ports.length, 3, server.lines.join("\n"));
  assertEquals(new Set(ports).size, 1);

  const post = await runTask("lesson21-client", ["-i", "-d", "Grüße", `${base}/echo`]);
  assertEquals(post.code, 0);
  assert(post.stdout.startsWith("HTTP/1.1 200 OK\ncontent-type: application/json\n"), post.stdout);
  assertStringIncludes(post.stdout, '["Content-Length", "7"]');
  assertStringIncludes(post.stdout, '"body": "Grüße"');

  const missing = await runTask("lesson21-client", ["-X", "DELETE", `${base}/style.css`]);
  assertEquals(missing.code, 22);
  assertEquals(missing.stdout, "DELETE is not allowed here: GET or HEAD\n");
  assertEquals(missing.stderr, `${base}/style.css: 405 Method Not Allowed\n`);
});

Deno.test("lesson 21 client: against Deno.serve (keep-alive, chunked answers)", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request, info) => {
      const body = await request.text();
      const url = new URL(request.url);
      if (url.pathname === "/stream") {
        // A stream: Deno.serve sends it chunked.
        return new Response(
          ReadableStream.from(["one, ", "two, ", "three\n"]).pipeThrough(new TextEncoderStream()),
        );
      }
      return new Response(
        `deno ${request.method} ${url.pathname} ${body} from ${info.remoteAddr.port}\n`,
      );
    },
  );
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const result = await runTask("lesson21-client", [
      "-i",
      `${base}/a`,
      `${base}/stream`,
      `${base}/b`,
    ]);
    assertEquals(result.code, 0, result.stderr);
    assertStringIncludes(result.stdout, "transfer-encoding: chunked\n");
    assertStringIncludes(result.stdout, "\none, two, three\n");
    const lines = result.stdout.split("\n").filter((line) => line.startsWith("deno "));
    assertEquals(lines.map((line) => line.split(" ").slice(0, 3).join(" ")), [
      "deno GET /a",
      "deno GET /b",
    ]);
    // The same client port for both: one connection.
    assertEquals(new Set(lines.map((line) => line.split(" ").at(-1))).size, 1);
    const post = await runTask("lesson21-client", ["-X", "PUT", "-d", "x=1", `${base}/p`]);
    assertEquals(post.stdout.split(" ").slice(0, 4).join(" "), "deno PUT /p x=1");
  } finally {
    await server.shutdown();
  }
});

Deno.test("lesson 21 client: against node:http (keep-alive, chunked)", async () => {
  const script = `
    const http = require("node:http");
    let connections = 0;
    const server = http.createServer((req, res) => {
      if (req.url === "/chunked") {
        res.write("part one, ");
        setTimeout(() => res.end("part two\\n"), 20);
        return;
      }
      const parts = [];
      req.on("data", (part) => parts.push(part));
      req.on("end", () => res.end("node " + req.method + " " + req.url + " " +
        Buffer.concat(parts).toString() + " connection " + connections + "\\n"));
    });
    server.on("connection", () => connections++);
    server.listen(0, "127.0.0.1", () => console.log("listening on 127.0.0.1:" + server.address().port));
  `;
  const { child, port } = await startProgram(
    "node",
    ["-e", script],
    /^listening on 127\.0\.0\.1:(\d+)$/,
  );
  try {
    const base = `http://127.0.0.1:${port}`;
    const result = await runTask("lesson21-client", [
      `${base}/a`,
      `${base}/chunked`,
      "-d",
      "hi",
      `${base}/b`,
    ]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(
      result.stdout,
      "node POST /a hi connection 1\npart one, part two\nnode POST /b hi connection 1\n",
    );
  } finally {
    await child.stop("SIGKILL");
  }
});

Deno.test("lesson 21 client: against Python's http.server (HTTP/1.0: a new connection each time)", async () => {
  const { child, port } = await startProgram(
    "python3",
    ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", "lessons/21-http/site"],
    /^Serving HTTP on 127\.0\.0\.1 port (\d+) /,
  );
  try {
    const base = `http://127.0.0.1:${port}`;
    const result = await runTask("lesson21-client", [`${base}/style.css`, `${base}/logo.svg`]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout, (await siteText("style.css")) + (await siteText("logo.svg")));
    const head = await runTask("lesson21-client", ["-i", "-X", "HEAD", `${base}/index.html`]);
    assertEquals(head.code, 0);
    assert(head.stdout.startsWith("HTTP/1.0 200 OK\nServer: SimpleHTTP/"), head.stdout);
    assertStringIncludes(head.stdout, "Content-type: text/html\n");
    assert(head.stdout.endsWith("\n\n"), "a HEAD answer has no body");
    const missing = await runTask("lesson21-client", [`${base}/nope`]);
    assertEquals(missing.code, 22);
    assertStringIncludes(missing.stdout, "File not found");
  } finally {
    await child.stop("SIGKILL");
  }
});

Deno.test("lesson 21 client: a body framed by the close, a lying length, a silent server", async () => {
  const byClose = rawServer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close\n");
  const liar = rawServer("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nhi");
  const hostile = rawServer(
    "HTTP/1.1 200 \x1b[2JOK\r\nX-Evil: \x1b]0;owned\x07\r\nContent-Length: 0\r\n\r\n",
  );
  const retitle = rawServer("HTTP/1.1 200 \x1b]0;owned\x07OK\r\nContent-Length: 0\r\n\r\n");
  const silent = rawServer(null);
  try {
    const closed = await runTask("lesson21-client", [`http://127.0.0.1:${byClose.port}/`]);
    assertEquals([closed.code, closed.stdout, closed.stderr], [0, "until the close\n", ""]);
    const lied = await runTask("lesson21-client", [`http://127.0.0.1:${liar.port}/`]);
    assertEquals([lied.code, lied.stderr], [
      1,
      `a bad answer from 127.0.0.1:${liar.port}: the body is 99999999999 bytes: over --max-body 16777216\n`,
    ]);
    const shown = await runTask("lesson21-client", ["-i", `http://127.0.0.1:${hostile.port}/`]);
    assertEquals(shown.code, 1, "a control character in a header is a bad answer");
    assertStringIncludes(shown.stderr, "a control character in X-Evil");
    // The reason phrase is shown, with its control characters made visible.
    const reason = await runTask("lesson21-client", ["-i", `http://127.0.0.1:${retitle.port}/`]);
    assertEquals([reason.code, reason.stdout], [
      0,
      "HTTP/1.1 200 \\x1b]0;owned\\x07OK\nContent-Length: 0\n\n",
    ]);
    const started = performance.now();
    const quiet = await runTask("lesson21-client", [
      "--timeout",
      "0.5",
      `http://127.0.0.1:${silent.port}/`,
    ]);
    assertEquals([quiet.code, quiet.stderr], [
      1,
      `gave up after 0.5 s waiting for the answer from 127.0.0.1:${silent.port}\n`,
    ]);
    assert(performance.now() - started < 8_000);
  } finally {
    await Promise.all([byClose.stop(), liar.stop(), hostile.stop(), retitle.stop(), silent.stop()]);
  }
});
