/**
 * Clients 02–07 against servers that misbehave: a client must not hang, crash
 * or report success when the server trickles, floods, hangs up, answers half
 * or answers something else. Each hostile server is a raw `Deno.listen`
 * server written here; each client runs as a real process.
 */
import { assert, assertEquals } from "@std/assert";
import { concat } from "@std/bytes";
import { writeAll } from "../lib/io.ts";
import { readLines } from "../lib/lines.ts";
import { encodeFrame, readFrames } from "../lib/frames.ts";
import { encodeMessage, MAGIC, MessageType, readMessages } from "../lib/message.ts";
import { closeQuietly } from "../lib/net.ts";
import { sha256Hex } from "../lessons/06-length-prefix/digest.ts";
import { decode, encode, readToEnd, runTask, sleep } from "./_helpers.ts";

/**
 * A loopback server that runs `handle` for each connection. Disposing it
 * closes the listener and every connection, and waits for every handler.
 */
class HostileServer implements AsyncDisposable {
  readonly port: number;
  #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  #conns = new Set<Deno.TcpConn>();
  #handlers: Promise<void>[] = [];
  #accepting: Promise<void>;

  constructor(handle: (conn: Deno.TcpConn) => Promise<void>) {
    this.port = this.#listener.addr.port;
    this.#accepting = (async () => {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        // A failed handler is the hostile server's business, not the test's:
        // the test checks what the client did.
        this.#handlers.push(handle(conn).catch(() => {}).finally(() => closeQuietly(conn)));
      }
    })().catch(() => {});
  }

  async [Symbol.asyncDispose]() {
    closeQuietly(this.#listener);
    await this.#accepting;
    for (const conn of this.#conns) closeQuietly(conn);
    await Promise.all(this.#handlers);
  }
}

/** Sends `prefix`, then `filler` for ever, one byte every `everyMs`; never closes. */
function trickle(prefix: Uint8Array, filler: number, everyMs = 400) {
  return async (conn: Deno.TcpConn) => {
    for (let i = 0;; i++) {
      await writeAll(conn, new Uint8Array([i < prefix.length ? prefix[i] : filler]));
      await sleep(everyMs);
    }
  };
}

/** Reads what the client sends until it half-closes (10 s at most). */
const drain = (conn: Deno.TcpConn) => readToEnd(conn);

/** Runs a client and measures how long it took, from spawn to exit. */
async function timedRun(task: string, args: string[]) {
  const started = Date.now();
  const result = await runTask(task, args, { timeoutMs: 10_000 });
  return { ...result, ms: Date.now() - started };
}

/** A lesson 07 header with the given type and length, and a body that never comes. */
function header07(type: number, length: number): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC);
  view.setUint32(4, type);
  view.setUint32(8, length);
  return bytes;
}

const A = "a".charCodeAt(0);

Deno.test("a server that trickles one byte at a time meets the client's --timeout", async (t) => {
  const cases: [string, string[], Uint8Array, number, string][] = [
    ["lesson02-client", [], new Uint8Array(), "H".charCodeAt(0), "the echo"],
    ["lesson03-client", ["--message", "hi"], new Uint8Array(), "H".charCodeAt(0), "the reply"],
    ["lesson04-client", [], new Uint8Array(), "y".charCodeAt(0), "the server's answer"],
    ["lesson05-client", ["--message", "Hello"], new Uint8Array(), A, "the answers"],
    // A 1023-byte frame (under the client's 1 KiB limit) that never ends.
    ["lesson06-client", [], new Uint8Array([0, 0, 3, 0xff]), A, "the answers"],
    // A response header announcing a 1000-byte body that never ends.
    ["lesson07-client", ["keys"], header07(MessageType.Response, 1000), A, "the response"],
  ];
  for (const [task, args, prefix, filler, what] of cases) {
    await t.step(task, async () => {
      await using server = new HostileServer(trickle(prefix, filler));
      const client = await timedRun(task, [
        "--port",
        String(server.port),
        "--timeout",
        "1",
        ...args,
      ]);
      assertEquals([client.code, client.stderr], [1, `gave up after 1 s waiting for ${what}\n`]);
      assert(!client.stderr.includes("Uncaught"));
      assert(client.ms >= 1_000, `gave up after ${client.ms} ms, before its 1 s deadline`);
      assert(client.ms < 6_000, `took ${client.ms} ms to give up after 1 s`);
    });
  }
});

Deno.test("a server that closes without answering: the client says so and exits 1", async (t) => {
  const cases: [string, string[]][] = [
    ["lesson02-client", []],
    ["lesson03-client", ["--message", "hi"]],
    ["lesson04-client", []],
    ["lesson05-client", ["--message", "Hello"]],
    ["lesson06-client", []],
    ["lesson07-client", ["keys"]],
  ];
  for (const [task, args] of cases) {
    await t.step(task, async () => {
      // FIN at once, then read what the client sends (closing with unread
      // bytes would reset the connection, a different failure).
      await using server = new HostileServer(async (conn) => {
        await conn.closeWrite();
        await drain(conn);
      });
      const client = await runTask(task, ["--port", String(server.port), ...args]);
      assertEquals(
        [client.code, client.stderr],
        [1, "the server closed the connection before answering\n"],
      );
    });
  }
});

Deno.test("a server that answers only half: the client says what is missing", async (t) => {
  await t.step("lesson 02: half the echo", async () => {
    await using server = new HostileServer(async (conn) => {
      const got = await drain(conn);
      await writeAll(conn, got.subarray(0, got.length / 2));
    });
    const client = await runTask("lesson02-client", ["--port", String(server.port)]);
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      "",
      "the echo is short: sent 12 bytes, got 6\n",
    ]);
  });

  await t.step("lesson 03: half the reply", async () => {
    await using server = new HostileServer(async (conn) => {
      const got = decode(await drain(conn)).toUpperCase();
      await writeAll(conn, encode(got).subarray(0, 10));
    });
    const client = await runTask("lesson03-client", [
      "--port",
      String(server.port),
      "--message",
      "I am hungry for 🌮",
    ]);
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      "",
      "the reply is short: expected 20 bytes, got 10\n",
    ]);
  });

  await t.step("lesson 05: one answer to two lines", async () => {
    await using server = new HostileServer(async (conn) => {
      for await (const line of readLines(conn, { idleTimeoutMs: 10_000 })) {
        await writeAll(conn, encode(`1: ${line}\n`));
        break;
      }
      await drain(conn);
    });
    const client = await runTask("lesson05-client", [
      "--port",
      String(server.port),
      "--message",
      "a",
      "--message",
      "b",
    ]);
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      "> a\n> b\n< 1: a\n",
      "the server answered 1 of 2 lines\n",
    ]);
  });

  await t.step("lesson 06: one answer to two frames", async () => {
    await using server = new HostileServer(async (conn) => {
      for await (const frame of readFrames(conn, { idleTimeoutMs: 10_000 })) {
        const text = `frame 1: ${frame.length} bytes, sha256 ${await sha256Hex(frame)}`;
        await writeAll(conn, encodeFrame(encode(text)));
        break;
      }
      await drain(conn);
    });
    const client = await runTask("lesson06-client", [
      "--port",
      String(server.port),
      "--message",
      "one",
      "--message",
      "two",
    ]);
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      'frame 1: "one", 3 bytes, sha256 matches\n',
      "the server answered 1 of 2 frames\n",
    ]);
  });
});

Deno.test("a server that answers something else: the client does not accept it", async (t) => {
  await t.step("lesson 02: an echo in capitals", async () => {
    await using server = new HostileServer(async (conn) => {
      await writeAll(conn, encode(decode(await drain(conn)).toUpperCase()));
    });
    const client = await runTask("lesson02-client", ["--port", String(server.port)]);
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      "",
      "the echo differs from what was sent at byte 1\n",
    ]);
  });

  await t.step("lesson 03: the text back, not in capitals", async () => {
    await using server = new HostileServer(async (conn) => {
      await writeAll(conn, await drain(conn));
    });
    const client = await runTask("lesson03-client", [
      "--port",
      String(server.port),
      "--message",
      "I am hungry for 🌮",
    ]);
    assertEquals([client.code, client.stdout, client.stderr], [
      1,
      "",
      'the reply is not the text in capitals: got "I am hungry for 🌮"\n',
    ]);
  });

  // Lesson 07: the server answers the first request it reads with `answer`.
  const answering07 = (answer: Uint8Array) => async (conn: Deno.TcpConn) => {
    for await (const _ of readMessages(conn, { idleTimeoutMs: 10_000 })) {
      await writeAll(conn, answer);
      break;
    }
  };
  const cases07: [string, string[], Uint8Array, string][] = [
    [
      "[1,2] is not a response",
      ["keys"],
      encodeMessage(MessageType.Response, [1, 2]),
      'the server\'s answer is not a response to "keys": response [1,2]\n',
    ],
    [
      "a get response without its value",
      ["get", "color"],
      encodeMessage(MessageType.Response, { ok: true }),
      'the server\'s answer is not a response to "get": response {"ok":true}\n',
    ],
    [
      "a keys response whose keys are not strings",
      ["keys"],
      encodeMessage(MessageType.Response, { ok: true, keys: [1] }),
      'the server\'s answer is not a response to "keys": response {"ok":true,"keys":[1]}\n',
    ],
    [
      "an error message without its code",
      ["keys"],
      encodeMessage(MessageType.Error, { ok: false }),
      'the server\'s answer is not a response to "keys": error {"ok":false}\n',
    ],
    [
      "an error code and a two-line message: printed as one line",
      ["set", "k", "v"],
      encodeMessage(MessageType.Error, {
        ok: false,
        error: "store-full",
        message: "the store is full:\nno more keys",
      }),
      "error store-full: the store is full: no more keys\n",
    ],
  ];
  for (const [name, args, answer, stderr] of cases07) {
    await t.step(`lesson 07: ${name}`, async () => {
      await using server = new HostileServer(answering07(answer));
      const client = await runTask("lesson07-client", ["--port", String(server.port), ...args]);
      assertEquals([client.code, client.stdout, client.stderr], [1, "", stderr]);
    });
  }
});

Deno.test("lesson 05: a server that sends lines for ever is cut off", async () => {
  // Writes batches of answer lines until the client goes away (or 4 MiB).
  await using server = new HostileServer(async (conn) => {
    const batch = encode("1: x\n".repeat(1000));
    for (let sent = 0; sent < 4 * 1024 * 1024; sent += batch.length) await writeAll(conn, batch);
  });
  const client = await runTask("lesson05-client", [
    "--port",
    String(server.port),
    "--message",
    "Hello",
  ]);
  // "Hello\n" is 6 bytes: even a server that answers every read, and every
  // read brings one byte, cannot send more than 6 answer lines.
  assertEquals([client.code, client.stdout, client.stderr], [
    1,
    "> Hello\n" + "< 1: x\n".repeat(6),
    "the server sent more answers than we sent bytes (6)\n",
  ]);
});

Deno.test("lesson 05: invalid UTF-8 while --split is still writing: one line, no crash", async () => {
  await using server = new HostileServer(async (conn) => {
    await writeAll(conn, concat([new Uint8Array([0xff]), encode("\n")]));
    await drain(conn);
  });
  const client = await runTask("lesson05-client", [
    "--port",
    String(server.port),
    "--message",
    "Hello",
    "--split",
  ]);
  assertEquals([client.code, client.stdout, client.stderr], [
    1,
    "> Hello\n",
    "a line is not valid UTF-8 text\n",
  ]);
});

Deno.test("a server that answers `h` without its LF and closes: the client says it was cut short", async (t) => {
  const truncated =
    'the server closed the connection in the middle of a line: "h" came without its LF ' +
    "(a truncated message)\n";
  const cases: [string, string[]][] = [
    ["lesson04-client", []],
    ["lesson05-client", ["--message", "hi", "--split"]],
    ["lesson05-client", ["--message", "hi"]],
    ["lesson15-client", ["--message", "hi", "--retries", "0"]],
    ["lesson16-client", ["--host", "127.0.0.1", "--message", "hi"]],
  ];
  for (const [task, args] of cases) {
    await t.step(`${task} ${args.join(" ")}`, async () => {
      await using server = new HostileServer(async (conn) => {
        // Lesson 04's server speaks first; the others wait for the request to begin.
        if (task !== "lesson04-client") await conn.read(new Uint8Array(1));
        await writeAll(conn, encode("h"));
      });
      const client = await runTask(task, ["--port", String(server.port), ...args]);
      assertEquals([client.code, client.stderr], [1, truncated], client.stdout);
      assert(!client.stdout.includes("< h"), client.stdout);
    });
  }
});

Deno.test("a server that sends terminal control codes: the client shows them as codes, never raw", async (t) => {
  // A line that would set the window title, ring the bell, return to the start
  // of the line and reverse what follows, on a terminal that took it raw.
  const hostile = "\x1b]0;owned\x07hi\r\u202eevil";
  const cases: [string, string[]][] = [
    ["lesson04-client", []],
    ["lesson05-client", ["--message", "hi"]],
    ["lesson09-client", []], // sends its standard input
    ["lesson16-client", ["--host", "127.0.0.1", "--message", "hi"]],
  ];
  for (const [task, args] of cases) {
    await t.step(`${task} ${args.join(" ")}`, async () => {
      await using server = new HostileServer(async (conn) => {
        // Lesson 04's server speaks first; the others wait for the request to begin.
        if (task !== "lesson04-client") await conn.read(new Uint8Array(1));
        await writeAll(conn, encode(hostile + "\n"));
      });
      const client = await runTask(task, ["--port", String(server.port), ...args], {
        stdin: "hi\n",
      });
      const output = client.stdout + client.stderr;
      for (const raw of ["\x1b", "\x07", "\r", "\u202e"]) {
        assert(!output.includes(raw), JSON.stringify(output));
      }
      assert(output.includes("\\x1b]0;owned\\x07hi\\x0d\\u202eevil"), output);
    });
  }
});
