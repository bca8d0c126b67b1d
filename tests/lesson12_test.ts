import { assert, assertEquals, assertMatch } from "@std/assert";
import { test } from "./_checks.ts";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { closeRaw, encode, LessonServer, runTask } from "./_helpers.ts";
import { User } from "./_chat_user.ts";

/** Flags that lift the line budget of flood control (for tests that send thousands of lines). */
const NO_LINE_LIMIT = ["--line-burst", "1000000", "--line-rate", "1000000"];

test("lesson 12: every command and every error code over raw sockets", async () => {
  await using server = await LessonServer.start("lesson12-server");
  const users: User[] = [];
  try {
    const alice = await User.connect(server.port);
    users.push(alice);
    assertEquals(await alice.ask("/users"), "error no-name send /name NAME first");
    assertEquals(await alice.ask("hello"), "error no-name send /name NAME first");
    const badName = "error bad-name a name is 1-32 letters, digits, _ or -";
    assertEquals(await alice.ask("/name bad name"), badName);
    assertEquals(await alice.ask("/name " + "a".repeat(33)), badName);
    assertEquals(await alice.ask("/name "), badName);
    assertEquals(await alice.ask("/name alice"), "ok name alice");

    const bob = await User.connect(server.port);
    users.push(bob);
    assertEquals(await bob.ask("/name alice"), "error name-taken alice is taken");
    assertEquals(await bob.ask("/name Bob_2-x"), "ok name Bob_2-x");
    assertEquals(await alice.next(), "joined Bob_2-x");
    assertEquals(await alice.ask("/users"), "users 2 Bob_2-x alice");
    // A page after a name (which need not be anyone's), ASCII order: capitals first.
    assertEquals(await alice.ask("/users Bob_2-x"), "users 2 alice");
    assertEquals(await alice.ask("/users B"), "users 2 Bob_2-x alice");
    assertEquals(await alice.ask("/users alice"), "users 2");

    assertEquals(await alice.ask("/to Bob_2-x hi there"), "ok sent Bob_2-x");
    assertEquals(await bob.next(), "from alice hi there");
    assertEquals(await alice.ask("/to carol hi"), "error no-such-user carol is not here");
    assertEquals(await alice.ask("/to Bob_2-x"), "error unknown-command usage: /to NAME TEXT");
    assertEquals(
      await alice.ask("just text"),
      "error no-partner choose someone with /chat NAME, or use /to NAME TEXT",
    );
    assertEquals(await alice.ask("/chat carol"), "error no-such-user carol is not here");
    assertEquals(await alice.ask("/chat"), "error unknown-command usage: /chat NAME");
    assertEquals(await alice.ask("/chat Bob_2-x"), "ok chat Bob_2-x");
    assertEquals(await alice.ask(encode("plain text 🌮\r\n")), "ok sent Bob_2-x");
    assertEquals(await bob.next(), "from alice plain text 🌮");
    assertEquals(await alice.ask("/frob x"), "error unknown-command /frob (try /help)");

    // 4,096 bytes is the limit; 4,097 is an error, and the connection goes on.
    const longest = "é".repeat(2048);
    assertEquals(await alice.ask(longest), "ok sent Bob_2-x");
    assertEquals(await bob.next(), `from alice ${longest}`);
    assertEquals(
      await alice.ask("x".repeat(4097)),
      "error line-too-long lines are at most 4096 bytes",
    );
    // Sent in pieces, and followed by a good line in the same write.
    await alice.send(encode("y".repeat(3000)));
    await alice.send(encode("y".repeat(3000) + "\n/users\n"));
    assertEquals(await alice.next(), "error line-too-long lines are at most 4096 bytes");
    assertEquals(await alice.next(), "users 2 Bob_2-x alice");
    assertEquals(
      await alice.ask(new Uint8Array([0x68, 0xc3, 0x28, 0x0a])),
      "error not-utf8 lines must be UTF-8",
    );
    assertEquals(await alice.ask("still talking"), "ok sent Bob_2-x");
    assertEquals(await bob.next(), "from alice still talking");

    // /bye: bye, then the server closes; the others are told.
    assertEquals(await bob.ask("/bye"), "bye");
    assertEquals(await bob.next(), null);
    assertEquals(await alice.next(), "left Bob_2-x");
    assertEquals(await alice.ask("more"), "error no-such-user Bob_2-x is not here");

    // A dropped connection frees its name too.
    const carol = await User.connect(server.port, "carol");
    users.push(carol);
    assertEquals(await alice.next(), "joined carol");
    const again = await User.connect(server.port);
    users.push(again);
    assertEquals(await again.ask("/name carol"), "error name-taken carol is taken");
    carol.close();
    assertEquals(await alice.next(), "left carol");
    assertEquals(await again.ask("/name carol"), "ok name carol");
    assertEquals(await alice.next(), "joined carol");
    assertEquals(await alice.ask("/users"), "users 2 alice carol");
  } finally {
    users.forEach((user) => user.close());
  }
  const result = await server.stop("SIGINT");
  assertEquals(result.code, 0);
  assertEquals(result.stderr, "");
  assert(result.stdout.includes("Bob_2-x left: said /bye\n"), result.stdout);
  assert(result.stdout.includes("carol left: hung up\n"), result.stdout);
});

test("lesson 12: a client that never reads is cut off; the others are unaffected", async () => {
  // Thousands of lines as fast as we can: far over the flood control meant for people.
  await using server = await LessonServer.start("lesson12-server", [
    "--max-queue",
    "65536",
    ...NO_LINE_LIMIT,
  ]);
  const slow = await User.connect(server.port, "slow");
  const talker = await User.connect(server.port, "talker");
  const watcher = await User.connect(server.port, "watcher");
  try {
    assertEquals(await slow.until(/^joined watcher$/), "joined watcher"); // then it stops reading
    assertEquals(await talker.next(), "joined watcher");
    assertEquals(await talker.ask("/chat slow"), "ok chat slow");
    const message = "m".repeat(4000);
    const lineBytes = `from talker ${message}\n`.length;
    let sent = 0;
    let cutOff = false;
    // Batches of 50 messages, until the server gives up on slow (at most 100 MB).
    while (!cutOff && sent < 25_000) {
      await talker.send(encode(`${message}\n`.repeat(50)));
      // 50 answers, plus "left slow" once the server gives up on slow.
      for (let answers = 0; answers < 50;) {
        const line = await talker.next();
        if (line === "left slow") {
          cutOff = true;
          continue;
        }
        answers++;
        if (line === "ok sent slow") sent++;
        else assertMatch(line ?? "EOF", /^error no-such-user slow/);
      }
    }
    assert(cutOff, `slow was never cut off after ${sent} messages`);
    // The others go on as before.
    assertEquals(await watcher.next(), "left slow");
    assertEquals(await talker.ask("/to watcher still here"), "ok sent watcher");
    assertEquals(await watcher.next(), "from talker still here");
    assertEquals(await watcher.ask("/users"), "users 2 talker watcher");
    // slow gets what fitted in the socket buffers, then the reason, then EOF:
    // far less than was sent to it, because the server's queue is bounded.
    let last = "";
    for (let line = await slow.next(); line !== null; line = await slow.next()) last = line;
    assertEquals(last, "error slow-reader you did not read your messages");
    assert(slow.bytesRead < sent * lineBytes, `${slow.bytesRead} of ${sent * lineBytes} bytes`);
    assertEquals(await slow.ask("/users").catch(() => null), null);
  } finally {
    [slow, talker, watcher].forEach((user) => user.close());
  }
  assert(await server.waitForLine("slow left: too slow to read"));
});

test("lesson 12: the smallest --max-queue still holds the longest line", async () => {
  await using server = await LessonServer.start("lesson12-server", ["--max-queue", "8192"]);
  const long = "a".repeat(32); // the longest name
  const sender = await User.connect(server.port, long);
  const reader = await User.connect(server.port, "reader");
  try {
    assertEquals(await sender.next(), "joined reader");
    assertEquals(await sender.ask("/chat reader"), "ok chat reader");
    // A plain line of 4,096 bytes: `from NAME TEXT` is longer than that.
    const text = "x".repeat(4096);
    assertEquals(await sender.ask(text), "ok sent reader");
    assertEquals(await reader.next(), `from ${long} ${text}`);
    assertEquals(await reader.ask("/users"), `users 2 ${long} reader`);
  } finally {
    [sender, reader].forEach((user) => user.close());
  }
});

test("lesson 12: 200 users at once", async () => {
  await using server = await LessonServer.start("lesson12-server");
  const names = Array.from({ length: 200 }, (_, i) => `user${String(i).padStart(3, "0")}`);
  const users: User[] = [];
  try {
    for (let i = 0; i < names.length; i += 50) {
      users.push(
        ...await Promise.all(names.slice(i, i + 50).map(() => User.connect(server.port))),
      );
    }
    // Everyone picks a name at the same time.
    await Promise.all(
      users.map(async (user, i) => {
        assertEquals(await user.until(/^ok name /), `ok name ${names[i]}`);
      }).map((p, i) => users[i].send(`/name ${names[i]}`).then(() => p)),
    );
    // Then everyone asks who is here: 200 in all, the first 100 names, sorted;
    // the rest after the last of them. No line grows with the room.
    await Promise.all(users.map(async (user) => {
      await user.send("/users");
      assertEquals(await user.until(/^users /), `users 200 ${names.slice(0, 100).join(" ")}`);
    }));
    assertEquals(await users[7].ask("/users user099"), `users 200 ${names.slice(100).join(" ")}`);
    assertEquals(await users[7].ask("/users user150"), `users 200 ${names.slice(151).join(" ")}`);
    // The terminal client shows a page and says how to get the next one.
    const client = await runTask("lesson12-client", [
      "--port",
      String(server.port),
      "--name",
      "watcher",
    ], { stdin: "/users\n/users user099\n/users user199\n" });
    assertEquals([client.code, client.stderr], [0, ""]);
    assertEquals(client.stdout.split("\n").slice(1, 4), [
      `* here (201): ${names.slice(0, 100).join(", ")} (101 more: /users user099)`,
      `* here (201), after user099: ${names.slice(100, 200).join(", ")} (more: /users user199)`,
      "* here (201), after user199: watcher",
    ]);
    // user000 talks to everyone else, one message each.
    await Promise.all(names.slice(1).map((name) => users[0].send(`/to ${name} hi ${name}`)));
    await Promise.all(
      users.slice(1).map(async (user, i) => {
        assertEquals(await user.until(/^from /), `from user000 hi ${names[i + 1]}`);
      }),
    );
  } finally {
    users.forEach((user) => user.close());
  }
});

test("lesson 12: idle users are told bye; --max-connections turns the rest away", async () => {
  await using server = await LessonServer.start("lesson12-server", [
    "--idle-timeout",
    "1",
    "--max-connections",
    "2",
  ]);
  const quiet = await User.connect(server.port, "quiet");
  const other = await User.connect(server.port);
  const third = await User.connect(server.port);
  try {
    assertEquals(await third.next(), "server busy");
    assertEquals(await third.next(), null);
    // quiet sends nothing more: after 1 s (and a tick), bye and EOF.
    assertEquals(await quiet.next(), "bye");
    assertEquals(await quiet.next(), null);
    assertEquals(await other.next(), "bye");
  } finally {
    [quiet, other, third].forEach((user) => user.close());
  }
  assert(await server.waitForLine("quiet left: idle for 1 s"));
});

test("lesson 12: Ctrl-C says bye to everyone and exits 0", async () => {
  await using server = await LessonServer.start("lesson12-server");
  const alice = await User.connect(server.port, "alice");
  try {
    const stopping = server.stop("SIGINT");
    assertEquals(await alice.next(), "bye");
    assertEquals(await alice.next(), null);
    const result = await stopping;
    assertEquals([result.code, result.stderr], [0, ""]);
    assertMatch(result.stdout, /shutting down: 1 user connected\n/);
  } finally {
    alice.close();
  }
});

test("lesson 12: Ctrl-C does not wait for a connection that never sent /name", async () => {
  await using server = await LessonServer.start("lesson12-server");
  const silent = await User.connect(server.port); // never names itself
  try {
    // One answer, so the server has surely accepted it; then it says nothing.
    assertEquals(await silent.ask("/users"), "error no-name send /name NAME first");
    const stopping = server.stop("SIGINT", 5_000); // the idle timeout is 600 s
    assertEquals(await silent.next(), "bye");
    assertEquals(await silent.next(), null);
    const result = await stopping;
    assertEquals([result.code, result.timedOut, result.stderr], [0, false, ""]);
  } finally {
    silent.close();
  }
});

test("lesson 12: the terminal client", async (t) => {
  await using server = await LessonServer.start("lesson12-server");
  const port = String(server.port);

  await t.step("--name, commands, friendly output, then /bye when input ends", async () => {
    const watcher = await User.connect(server.port, "watcher");
    try {
      const result = await runTask("lesson12-client", ["--port", port, "--name", "alice"], {
        stdin:
          "/users\n/to alice note to self\n/to watcher hi\n/chat nobody\n/help\n/chat watcher\nhello\n",
      });
      assertEquals([result.code, result.stderr], [0, ""]);
      assertEquals(result.stdout.split("\n"), [
        "* you are alice: /help lists the commands",
        "* commands:",
        "*   /users [AFTER]    who is here, 100 at a time: /users LAST shows the next ones",
        "*   /chat NAME        send your plain lines to NAME",
        "*   /to NAME TEXT     send one message to NAME",
        "*   /bye              leave",
        "*   anything else goes to the person you chose with /chat",
        "* here (2): alice, watcher",
        "alice: note to self",
        "* error: nobody is not here",
        "* talking to watcher: plain lines go to watcher",
        "* bye",
        "",
      ]);
      assertEquals(
        [await watcher.next(), await watcher.next(), await watcher.next(), await watcher.next()],
        ["joined alice", "from alice hi", "from alice hello", "left alice"],
      );
    } finally {
      watcher.close();
    }
  });

  await t.step("asks for a name and retries when it is taken", async () => {
    const alice = await User.connect(server.port, "alice");
    try {
      const result = await runTask("lesson12-client", ["--port", port], {
        stdin: "alice\nno spaces\nalice2\n/users\n/bye\n/users\n",
      });
      assertEquals([result.code, result.stderr], [0, ""]);
      assertEquals(result.stdout.split("\n"), [
        "* your name? (1-32 letters, digits, _ or -)",
        "* alice is taken: type another name",
        "* a name is 1-32 letters, digits, _ or -: type another name",
        "* you are alice2: /help lists the commands",
        "* here (2): alice, alice2",
        "* bye",
        "",
      ]);
    } finally {
      alice.close();
    }
  });

  await t.step("the server going away: a clear notice, exit 1", async () => {
    // A server that accepts the connection and never answers: given up after --timeout.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted: Deno.TcpConn[] = [];
    const accepting = silent.accept().then((conn) => accepted.push(conn), () => {});
    try {
      const started = Date.now();
      const result = await runTask("lesson12-client", [
        "--port",
        String(silent.addr.port),
        "--name",
        "alice",
        "--timeout",
        "1",
      ], { stdin: "", timeoutMs: 10_000 });
      assertEquals([result.code, result.timedOut], [1, false]);
      assertEquals(result.stderr, "* the server did not answer /name in 1 s\n");
      assertEquals(result.stdout, "");
      assert(Date.now() - started < 8_000, "the client waited far past --timeout");
    } finally {
      silent.close();
      await accepting;
      accepted.forEach(closeRaw);
    }

    // A server that accepts the name, then hangs up.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = (async () => {
      const conn = await listener.accept();
      try {
        await readWithTimeout(conn, new Uint8Array(100), 10_000);
        await writeAll(conn, encode("ok name alice\n"));
      } finally {
        closeRaw(conn);
      }
    })();
    try {
      const result = await runTask("lesson12-client", [
        "--port",
        String(listener.addr.port),
        "--name",
        "alice",
      ], { stdin: "" });
      assertEquals(result.code, 1);
      assertMatch(
        result.stderr,
        /^\* (the server closed the connection|lost the connection to the server: .+)\n$/,
      );
      assertEquals(result.stdout, "* you are alice: /help lists the commands\n");
    } finally {
      listener.close();
      await serving;
    }
  });
});
