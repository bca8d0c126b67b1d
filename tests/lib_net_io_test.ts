import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { describeNetError, LessonError, TimeoutError } from "../lib/errors.ts";
import { readAll, readChunks, readWithTimeout, writeAll } from "../lib/io.ts";
import { readLines } from "../lib/lines.ts";
import {
  closeQuietly,
  connect,
  connectError,
  formatAddr,
  listen,
  listenError,
} from "../lib/net.ts";
import { closedPort } from "../tools/lesson_process.ts";

/** A connected pair of loopback sockets; both are closed by `using`. */
async function socketPair() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const server = await listener.accept();
  listener.close();
  return {
    client,
    server,
    [Symbol.dispose]() {
      closeQuietly(client);
      closeQuietly(server);
    },
  };
}

Deno.test("formatAddr puts IPv6 hosts in brackets", () => {
  assertEquals(formatAddr({ transport: "tcp", hostname: "127.0.0.1", port: 80 }), "127.0.0.1:80");
  assertEquals(formatAddr({ transport: "tcp", hostname: "::1", port: 80 }), "[::1]:80");
});

Deno.test("listen and connect errors are one line with a hint", async (t) => {
  await t.step("address in use", () => {
    assertEquals(
      listenError(
        new Deno.errors.AddrInUse("Address already in use (os error 98)"),
        "127.0.0.1",
        65402,
      )
        .message,
      "port 65402 is already in use: is another server running? stop it, or try --port 0",
    );
  });
  await t.step("permission denied (ports below 1024)", () => {
    assertEquals(
      listenError(
        new Deno.errors.PermissionDenied("Permission denied (os error 13)"),
        "127.0.0.1",
        80,
      )
        .message,
      "permission denied to listen on 127.0.0.1:80: ports below 1024 need administrator rights; " +
        "use a port from 1024 to 65535, or --port 0",
    );
  });
  await t.step("a real AddrInUse from listen()", () => {
    using first = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (first.addr as Deno.NetAddr).port;
    const error = assertThrows(() => listen({ host: "127.0.0.1", port, lesson: 2 }), LessonError);
    assertEquals(
      error.message,
      `port ${port} is already in use: is another server running? stop it, or try --port 0`,
    );
  });
  await t.step("a real refused connect()", async () => {
    const port = closedPort();
    const error = await assertRejects(
      () => connect({ host: "127.0.0.1", port, lesson: 2 }),
      LessonError,
    );
    assertEquals(
      error.message,
      `could not connect to 127.0.0.1:${port}: connection refused: is the server running? ` +
        "start it with: deno task lesson02-server",
    );
  });
  await t.step("reset, timeout and broken pipe while connecting", () => {
    assertEquals(
      connectError(new Deno.errors.ConnectionReset("x"), "::1", 5, 3).message,
      "could not connect to [::1]:5: connection reset: the server closed it at once",
    );
    assertEquals(
      connectError(new Deno.errors.TimedOut("x"), "127.0.0.1", 5, 3).message,
      "could not connect to 127.0.0.1:5: timed out: is the address right?",
    );
    assertEquals(
      connectError(new Deno.errors.BrokenPipe("x"), "127.0.0.1", 5, 3).message,
      "could not connect to 127.0.0.1:5: broken pipe: the server closed the connection",
    );
  });
  await t.step("errors on an open connection get plain words; bugs get undefined", () => {
    assertEquals(
      describeNetError(new Deno.errors.ConnectionReset("x")),
      "connection reset by peer (the other side closed abruptly)",
    );
    assertEquals(describeNetError(new TypeError("bug")), undefined);
  });
});

Deno.test("writeAll and readAll move 16 MiB intact, with half-close", async () => {
  using pair = await socketPair();
  const payload = new Uint8Array(16 * 1024 * 1024);
  for (let i = 0; i < payload.length; i += 65536) {
    crypto.getRandomValues(payload.subarray(i, i + 65536));
  }
  const sending = writeAll(pair.client, payload).then(() => pair.client.closeWrite());
  const received = await readAll(pair.server, { maxBytes: payload.length, idleTimeoutMs: 10_000 });
  await sending;
  assertEquals(received.length, payload.length);
  assertEquals(received, payload);
  // After the client half-closed, the server can still answer it.
  await writeAll(pair.server, new Uint8Array([1, 2, 3]));
  pair.server.close();
  assertEquals(
    await readAll(pair.client, { maxBytes: 10, idleTimeoutMs: 10_000 }),
    new Uint8Array([1, 2, 3]),
  );
});

Deno.test("readAll enforces its size limit", async () => {
  using pair = await socketPair();
  await writeAll(pair.client, new Uint8Array(100));
  await pair.client.closeWrite();
  const error = await assertRejects(
    () => readAll(pair.server, { maxBytes: 99, idleTimeoutMs: 10_000, what: "the reply" }),
    LessonError,
  );
  assertEquals(error.message, "the reply is larger than the limit of 99 bytes");
});

Deno.test("reads time out when the peer is silent", async () => {
  using pair = await socketPair();
  const error = await assertRejects(
    () => readWithTimeout(pair.server, new Uint8Array(10), 100, "the client"),
    TimeoutError,
  );
  assertEquals(error.message, "timed out after 0.1 s waiting for the client");
});

Deno.test("readChunks ends at EOF; readLines splits lines and keeps a last partial line", async () => {
  using pair = await socketPair();
  await writeAll(pair.client, new TextEncoder().encode("one\r\ntwo\nthree"));
  await pair.client.closeWrite();
  const lines: string[] = [];
  for await (const line of readLines(pair.server, { idleTimeoutMs: 5_000 })) lines.push(line);
  assertEquals(lines, ["one", "two", "three"]);
  // The server closes: the client's reads end at once with no chunks.
  pair.server.close();
  const chunks = [];
  for await (const chunk of readChunks(pair.client, { idleTimeoutMs: 5_000 })) chunks.push(chunk);
  assertEquals(chunks, []);
});

Deno.test("formatAddr writes a Unix socket as unix:PATH, an abstract name with @", () => {
  assertEquals(formatAddr({ transport: "unix", path: "/tmp/a.sock" }), "unix:/tmp/a.sock");
  assertEquals(formatAddr({ transport: "unix", path: "\0lesson17" }), "unix:@lesson17");
  // A client's end of a Unix connection has no path.
  assertEquals(
    formatAddr({ transport: "unix", path: null as unknown as string }),
    "unix:(unnamed)",
  );
});
