/**
 * Lesson 12's flood control (issue 17): the line and name budgets, the
 * `error too-fast` answer, the close of a client that keeps going, the flags,
 * a broadcast encoded once, and a short version of bench/chat_flood.ts (a
 * renaming flooder among users who read: the others keep a fast round trip
 * and nobody else is cut off).
 */
import { assert, assertEquals, assertMatch, assertStrictEquals } from "@std/assert";
import { writeAll } from "../lib/io.ts";
import { ChatRoom, ChatSession, type Outbox } from "../lessons/12-multi-user-chat/room.ts";
import { closeRaw, encode, LessonServer, rawConnect, runTask, sleep } from "./_helpers.ts";
import { User } from "./_chat_user.ts";

const TOO_FAST_LINES = "error too-fast more than 5 lines at once or 0.01 a second: " +
  "line dropped, slow down";

Deno.test("lesson 12: over --line-burst a line gets error too-fast; keep going and you are closed", async () => {
  // 5 lines at once, then one every 100 s: nothing comes back during the test.
  await using server = await LessonServer.start("lesson12-server", [
    "--line-burst",
    "5",
    "--line-rate",
    "0.01",
  ]);
  const alice = await User.connect(server.port, "alice"); // line 1
  const watcher = await User.connect(server.port, "watcher");
  try {
    assertEquals(await alice.next(), "joined watcher");
    // 15 lines in one write: 4 answered, 5 refused (one answer each), then closed.
    await alice.send(encode("/chat nobody\n".repeat(15)));
    const answers: (string | null)[] = [];
    for (let line = await alice.next(); line !== null; line = await alice.next()) {
      answers.push(line);
    }
    assertEquals(answers, [
      ...Array(4).fill("error no-such-user nobody is not here"),
      ...Array(5).fill(TOO_FAST_LINES),
      "error too-fast you kept sending more than 5 lines at once or 0.01 a second: goodbye",
    ]);
    // The name is freed as usual, and the others go on.
    assertEquals(await watcher.next(), "left alice");
    const again = await User.connect(server.port, "alice");
    again.close();
    assertEquals(await watcher.next(), "joined alice");
  } finally {
    [alice, watcher].forEach((user) => user.close());
  }
  assert(await server.waitForLine("alice left: sent too fast"));
});

Deno.test("lesson 12: a line refused for flooding does nothing, and the budget comes back (--line-rate)", async () => {
  await using server = await LessonServer.start("lesson12-server", [
    "--line-burst",
    "3",
    "--line-rate",
    "5",
  ]);
  const alice = await User.connect(server.port, "alice");
  const bob = await User.connect(server.port, "bob");
  try {
    assertEquals(await alice.next(), "joined bob");
    await sleep(500); // alice's bucket is full again: 3 lines
    await alice.send(encode("/to bob one\n/to bob two\n/to bob three\n/to bob four\n"));
    assertEquals(
      [await alice.next(), await alice.next(), await alice.next(), await alice.next()],
      [
        "ok sent bob",
        "ok sent bob",
        "ok sent bob",
        "error too-fast more than 3 lines at once or 5 a second: line dropped, slow down",
      ],
    );
    // bob got the three, never the fourth.
    assertEquals(
      [await bob.next(), await bob.next(), await bob.next()],
      ["from alice one", "from alice two", "from alice three"],
    );
    // 5 a second: a moment later alice may talk again.
    await sleep(500);
    assertEquals(await alice.ask("/to bob five"), "ok sent bob");
    assertEquals(await bob.next(), "from alice five");
  } finally {
    [alice, bob].forEach((user) => user.close());
  }
});

Deno.test("lesson 12: /name has a stricter budget (--name-burst, --name-rate); bad lines count as lines", async () => {
  await using server = await LessonServer.start("lesson12-server", [
    "--name-burst",
    "2",
    "--name-rate",
    "0.01",
    "--line-burst",
    "8",
    "--line-rate",
    "0.01",
  ]);
  const watcher = await User.connect(server.port, "watcher");
  const renamer = await User.connect(server.port);
  try {
    const tooFast = "error too-fast more than 2 name changes at once or one every 100 s: " +
      "line dropped, slow down";
    assertEquals(await renamer.ask("/name a1"), "ok name a1");
    assertEquals(await renamer.ask("/name a2"), "ok name a2");
    assertEquals(await renamer.ask("/name a3"), tooFast);
    // Other lines still go through: the name budget is for names only.
    assertEquals(await renamer.ask("/chat watcher"), "ok chat watcher");
    // A line that is too long, or not UTF-8, takes from the line budget too.
    assertEquals(
      await renamer.ask("x".repeat(5000)),
      "error line-too-long lines are at most 4096 bytes",
    );
    assertEquals(
      await renamer.ask(new Uint8Array([0xc3, 0x28, 0x0a])),
      "error not-utf8 lines must be UTF-8",
    );
    assertEquals(await renamer.ask("/name a4"), tooFast);
    assertEquals(
      await renamer.ask("/name a5"),
      "error too-fast you kept sending more than 2 name changes at once or one every 100 s: goodbye",
    );
    assertEquals(await renamer.next(), null);
    // The watcher saw two names only, and the last one freed.
    assertEquals(
      [await watcher.next(), await watcher.next(), await watcher.next(), await watcher.next()],
      ["joined a1", "left a1", "joined a2", "left a2"],
    );
    // 8 lines: the line budget is spent, so an 8th line (after 7) is refused.
    const other = await User.connect(server.port, "other");
    try {
      assertEquals(await watcher.next(), "joined other");
      await other.send(encode("/chat nobody\n".repeat(7)));
      for (let i = 0; i < 7; i++) {
        assertEquals(await other.next(), "error no-such-user nobody is not here");
      }
      assertMatch((await other.ask("/chat nobody"))!, /^error too-fast more than 8 lines/);
      // /bye is always answered: leaving is never too fast.
      assertEquals(await other.ask("/bye"), "bye");
    } finally {
      other.close();
    }
  } finally {
    [watcher, renamer].forEach((user) => user.close());
  }
});

Deno.test("lesson 12: the flood control flags are checked and listed in --help", async () => {
  for (
    const [flag, value, error] of [
      ["--line-burst", "0", '--line-burst must be a whole number of at least 1, got "0"'],
      ["--line-rate", "0", '--line-rate must be a number of at least 0.01, got "0"'],
      ["--name-burst", "1.5", '--name-burst must be a whole number of at least 1, got "1.5"'],
      ["--name-rate", "-1", '--name-rate must be a number of at least 0.001, got "-1"'],
    ]
  ) {
    const result = await runTask("lesson12-server", ["--port", "0", flag, value]);
    assertEquals([result.code, result.stdout, result.stderr.trim()], [2, "", error]);
  }
  const help = await runTask("lesson12-server", ["--help"]);
  assertEquals(help.code, 0);
  for (const text of ["--line-burst N", "(default 300)", "--line-rate N", "(default 20)"]) {
    assert(help.stdout.includes(text), `${text} not in:\n${help.stdout}`);
  }
  for (const text of ["--name-burst N", "(default 5)", "--name-rate N", "(default 0.2)"]) {
    assert(help.stdout.includes(text), `${text} not in:\n${help.stdout}`);
  }
});

/** An outbox that keeps what it is given. */
class KeptOutbox implements Outbox {
  lines: (string | Uint8Array)[] = [];
  send(line: string | Uint8Array): boolean {
    this.lines.push(line);
    return true;
  }
  close(): void {}
}

Deno.test("lesson 12: a broadcast is encoded once, and every queue shares those bytes", () => {
  const room = new ChatRoom();
  const outboxes = Array.from({ length: 4 }, () => new KeptOutbox());
  const sessions = outboxes.map((outbox, i) => {
    const session = new ChatSession(room, outbox, `peer${i}`);
    session.handleLine(`/name u${i}`);
    return session;
  });
  for (const outbox of outboxes) outbox.lines = [];
  sessions[0].handleLine("/name renamed");
  // u0's own answer, and `left u0` + `joined renamed` to each of the 3 others.
  assertEquals(outboxes[0].lines, ["ok name renamed"]);
  const [left, joined] = outboxes[1].lines;
  if (!(left instanceof Uint8Array) || !(joined instanceof Uint8Array)) {
    throw new Error(`a broadcast was not bytes: ${outboxes[1].lines}`);
  }
  assertEquals(new TextDecoder().decode(left), "left u0\n");
  assertEquals(new TextDecoder().decode(joined), "joined renamed\n");
  for (const outbox of outboxes.slice(2)) {
    assertStrictEquals(outbox.lines[0], left); // the same bytes, not a copy
    assertStrictEquals(outbox.lines[1], joined);
  }
});

Deno.test("lesson 12: a renaming flooder among 100 readers: too-fast, closed; the others unaffected", async () => {
  await using server = await LessonServer.start("lesson12-server");
  const readers = await Promise.all(
    Array.from({ length: 100 }, (_, i) => User.connect(server.port, `r${i}`)),
  );
  const alice = await User.connect(server.port, "alice");
  const bob = await User.connect(server.port, "bob");
  const flooder = await rawConnect(server.port);
  // Every reader reads everything, as fast as it comes (counting its lines).
  let readersStopping = false;
  const cutOff: string[] = [];
  const reading = readers.map(async (reader, i) => {
    try {
      while ((await reader.next(60_000)) !== null) { /* read on */ }
    } catch { /* closed by us */ }
    if (!readersStopping) cutOff.push(`r${i}`);
  });
  // The flooder renames as fast as it can for 3 s, reading (and dropping) what comes back.
  // The server closes it mid-flood, so its last answers may be lost in a reset.
  let flooderClosed = false;
  let linesSent = 0;
  const flooding = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    const readingAnswers = (async () => {
      try {
        while ((await flooder.read(buffer)) !== null) { /* dropped */ }
      } catch { /* a reset */ }
      flooderClosed = true;
    })();
    try {
      for (const end = Date.now() + 3000; Date.now() < end && !flooderClosed;) {
        let chunk = "";
        for (let j = 0; j < 200; j++) chunk += `/name f${++linesSent}\n`;
        await writeAll(flooder, encode(chunk));
      }
    } catch { /* closed by the server */ }
    await readingAnswers; // until the server closes it (or we do, at the end)
  })();
  // Meanwhile alice and bob talk: each round trip is alice → bob → alice.
  const rtts: number[] = [];
  try {
    for (let round = 0; round < 30; round++) {
      const started = performance.now();
      // (Around the lines we wait for come the flooder's `joined` and `left`.)
      await alice.send(`/to bob ping${round}`);
      assertEquals(await alice.until(/^(ok|error) /), "ok sent bob");
      assertEquals(await bob.until(/^from alice /), `from alice ping${round}`);
      await bob.send(`/to alice pong${round}`);
      assertEquals(await bob.until(/^(ok|error) /), "ok sent alice");
      assertEquals(await alice.until(/^from bob /), `from bob pong${round}`);
      rtts.push(performance.now() - started);
      await sleep(50);
    }
    for (const end = Date.now() + 5000; !flooderClosed && Date.now() < end;) await sleep(50);
    // The flooder was closed (its 5 names and 5 refusals come first: see the test above).
    assert(flooderClosed, `the flooder was never closed (${linesSent} lines sent)`);
    // Nobody else was cut off, and the pair stayed fast (generous margins:
    // the bench asks for a median under 100 ms and a worst under 500 ms).
    assertEquals(cutOff, []);
    rtts.sort((a, b) => a - b);
    const median = rtts[Math.floor(rtts.length / 2)];
    assert(median < 250, `median round trip ${median.toFixed(1)} ms: ${rtts.map(Math.round)}`);
    assert(rtts.at(-1)! < 2000, `worst round trip ${rtts.at(-1)!.toFixed(1)} ms`);
  } finally {
    readersStopping = true;
    [...readers, alice, bob].forEach((user) => user.close());
    closeRaw(flooder);
    await Promise.all(reading);
    await flooding;
  }
});
