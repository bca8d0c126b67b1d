/**
 * Lesson 20: several chat servers, one chat, through a real Redis.
 *
 * Each test starts its own `redis-server` on a free loopback port (nothing
 * saved to disk) and stops it by its process id. Where redis-server is not
 * installed the tests are skipped with a note, except in CI (CI=true),
 * where they must run.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { createClient } from "redis";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { LineDecoder } from "../lib/lines.ts";
import { ChildProgram, startRedis } from "../lessons/20-redis-chat/cluster.ts";
import { closedPort, closeRaw, encode, LessonServer, rawConnect, runTask } from "./_helpers.ts";
import { RedisChatServers, skipWithoutRedis } from "./_redis.ts";
import { test } from "./_checks.ts";

const ignore = await skipWithoutRedis("lesson 20 tests");

/** A scripted chat user on a raw socket (lesson 12's protocol, line by line). */
class User {
  #decoder = new LineDecoder(1 << 16);
  #lines: string[] = [];
  #buffer = new Uint8Array(16 * 1024);
  private constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number, name?: string): Promise<User> {
    const user = new User(await rawConnect(port));
    if (name !== undefined) assertEquals(await user.ask(`/name ${name}`), `ok name ${name}`);
    return user;
  }

  send(line: string): Promise<void> {
    return writeAll(this.conn, encode(line + "\n"));
  }

  async next(timeoutMs = 10_000): Promise<string | null> {
    while (this.#lines.length === 0) {
      const n = await readWithTimeout(this.conn, this.#buffer, timeoutMs, "the server");
      if (n === null) return null;
      this.#lines.push(...this.#decoder.push(this.#buffer.subarray(0, n)));
    }
    return this.#lines.shift()!;
  }

  async ask(line: string, timeoutMs?: number): Promise<string | null> {
    await this.send(line);
    return await this.next(timeoutMs);
  }

  /** Lines until one equal to `line` (within `timeoutMs`); returns those skipped. */
  async until(line: string, timeoutMs = 10_000): Promise<string[]> {
    const skipped: string[] = [];
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const got = await this.next(Math.max(1, deadline - Date.now()));
      if (got === null) throw new Error(`EOF before "${line}"; got ${JSON.stringify(skipped)}`);
      if (got === line) return skipped;
      skipped.push(got);
    }
  }

  /** Lines until every one of `wanted` came (in any order, within `timeoutMs`); all lines read. */
  async collect(wanted: string[], timeoutMs = 10_000): Promise<string[]> {
    const seen: string[] = [];
    const deadline = Date.now() + timeoutMs;
    while (!wanted.every((line) => seen.includes(line))) {
      const got = await this.next(Math.max(1, deadline - Date.now()));
      if (got === null) throw new Error(`EOF; got ${JSON.stringify(seen)}`);
      seen.push(got);
    }
    return seen.sort();
  }

  close(): void {
    closeRaw(this.conn);
  }
}

/** Redis, servers and users of one test; everything stopped at the end, whatever happens. */
class Cluster extends RedisChatServers {
  users: User[] = [];

  async user(server: LessonServer, name?: string): Promise<User> {
    const user = await User.connect(server.port, name);
    this.users.push(user);
    return user;
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    this.users.forEach((user) => user.close());
    await super[Symbol.asyncDispose]();
  }
}

test(
  "lesson 20: two servers are one chat: messages both ways, /users, names unique",
  async () => {
    await using cluster = await Cluster.start(2);
    const [a, b] = cluster.servers;
    const alice = await cluster.user(a, "alice");
    const bob = await cluster.user(b, "bob");
    assertEquals(await alice.next(), "joined bob");
    // /users on either server lists both.
    assertEquals(await alice.ask("/users"), "users 2 alice bob");
    assertEquals(await bob.ask("/users"), "users 2 alice bob");

    assertEquals(await alice.ask("/to bob hi from A 🌮"), "ok sent bob");
    assertEquals(await bob.next(), "from alice hi from A 🌮");
    assertEquals(await bob.ask("/chat alice"), "ok chat alice");
    assertEquals(await bob.ask("and hi from B"), "ok sent alice");
    assertEquals(await alice.next(), "from bob and hi from B");
    assertEquals(await alice.ask("/to nobody hi"), "error no-such-user nobody is not here");

    // A name taken on one server is refused on the other.
    const other = await cluster.user(b);
    assertEquals(await other.ask("/name alice"), "error name-taken alice is taken");
    // Two servers asked for the same new name at the same moment: exactly one gets it.
    const [onA, onB] = [await cluster.user(a), await cluster.user(b)];
    const answers = await Promise.all([onA.ask("/name zed"), onB.ask("/name zed")]);
    assertEquals(answers.sort(), ["error name-taken zed is taken", "ok name zed"]);

    // B knows zed once bob, on B, is told (at once if zed is on B, through Redis if on A).
    assertEquals(await bob.until("joined zed"), []);

    // Several lines in one write still get their answers in order (the claim waits for Redis).
    // (`joined zed` from A may arrive between them: announcements can come at any time.)
    await other.conn.write(encode("/name carol\n/users\n/to alice hello\n"));
    const replies: (string | null)[] = [];
    while (replies.length < 3) {
      const line = await other.next();
      if (line !== "joined zed") replies.push(line);
      if (line === null) break; // the server closed: the assertion says what was missing
    }
    assertEquals(replies, ["ok name carol", "users 4 alice bob carol zed", "ok sent alice"]);
    // Announcements from this server and from the other one may come in either order.
    assertEquals((await alice.until("from carol hello")).sort(), ["joined carol", "joined zed"]);

    // A server that stops properly tells the others at once (not after the 15 s expiry).
    const c = await cluster.addServer();
    await cluster.user(c, "dave");
    assertEquals(await alice.until("joined dave"), []);
    const stopping = Date.now();
    assertEquals((await c.stop("SIGTERM")).code, 0);
    assertEquals(await alice.until("left dave", 5_000), []);
    assert(Date.now() - stopping < 5_000);

    // Leaving frees the name everywhere.
    await bob.send("/bye");
    assertEquals((await bob.until("bye")).sort(), ["joined carol", "joined dave", "left dave"]);
    assertEquals(await alice.until("left bob"), []);
    const bob2 = await cluster.user(a, "bob");
    assertEquals((await other.until("joined bob")).sort(), [
      "joined dave",
      "left bob",
      "left dave",
    ]);
    assertEquals(await other.ask("/to bob again"), "ok sent bob");
    assertEquals(await bob2.next(), "from carol again");
  },
  { ignore },
);

/** A lesson 20 server whose way to Redis goes through lesson 19's proxy, `delayMs` each piece. */
async function slowServer(cluster: Cluster, delayMs: number): Promise<LessonServer> {
  const proxy = await LessonServer.start("lesson19-server", [
    "--to",
    `127.0.0.1:${cluster.redis.port}`,
    "--delay",
    String(delayMs),
    "--quiet",
  ]);
  cluster.servers.push(proxy); // stopped at the end with the others
  const server = await LessonServer.start("lesson20-server", [
    "--redis",
    `redis://127.0.0.1:${proxy.port}`,
  ]);
  cluster.servers.push(server);
  assert(await server.waitForLine(/^redis: connected to /, 20_000), server.lines.join("\n"));
  return server;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(
  "lesson 20: a server with a slow way to Redis: Redis decides a name, the others know it first",
  async (t) => {
    await using cluster = await Cluster.start(1);
    const [fast] = cluster.servers;
    // Every piece between this server and Redis is held 500 ms each way.
    const slow = await slowServer(cluster, 500);

    await t.step("two servers, one name: one command in Redis gives it once", async () => {
      const [onSlow, onFast] = [await cluster.user(slow), await cluster.user(fast)];
      // The slow server's command reaches Redis after 500 ms, its answer comes back after
      // 1,000. The fast server is asked in the middle, at 1,000 ms: a GET then a SET (or a
      // SET without NX) would find the name free on both, and both would answer ok.
      const first = onSlow.ask("/name zed", 10_000);
      await sleep(1_000);
      assertEquals(await onFast.ask("/name zed"), "error name-taken zed is taken");
      assertEquals(await first, "ok name zed");
    });

    await t.step("`ok name` once the other servers know the name", async () => {
      const alice = await cluster.user(fast, "alice");
      await cluster.user(slow, "bob"); // SET, then PUBLISH of joined: 2 s through the proxy
      // At once: alice's server has heard of bob, so a message to him is taken.
      await alice.send("/to bob are you there?");
      assertEquals([await alice.next(), await alice.next()], ["joined bob", "ok sent bob"]);
    });
  },
  { ignore },
);

test(
  "lesson 20: a user cut off while Redis decides their /name leaves no name behind",
  async () => {
    // --idle-timeout 1: a user who sends nothing for 1 s is told bye and closed.
    await using cluster = await Cluster.start(1, ["--idle-timeout", "1", "--expiry", "20"]);
    const [a] = cluster.servers;
    const ghost = await cluster.user(a);
    // Redis answers nothing now: the claim waits for its 2 s deadline, and the user is
    // cut off as idle meanwhile (after 1 s).
    cluster.redis.process.signal("SIGSTOP");
    try {
      const asked = Date.now();
      await ghost.send("/name ghost");
      assertEquals(await ghost.next(5_000), "bye");
      assertEquals(await ghost.next(5_000), null);
      assert(await a.waitForLine(/^redis: lost /, 5_000), a.lines.join("\n"));
      await sleep(Math.max(0, asked + 3_000 - Date.now())); // past the claim's deadline
      // The name was never given to a user who is gone: anyone may take it.
      const other = await cluster.user(a);
      assertEquals(await other.ask("/name ghost"), "ok name ghost");
      assertEquals(await other.ask("/users"), "users 1 ghost");
    } finally {
      cluster.redis.process.signal("SIGCONT");
    }
  },
  { ignore },
);

test(
  "lesson 20: a server killed with SIGKILL: its users are 'left' within the expiry",
  async () => {
    // --expiry 1.5: names refreshed every 0.5 s; a dead server's expire within 2 s.
    await using cluster = await Cluster.start(2, ["--expiry", "1.5"]);
    const [a, b] = cluster.servers;
    const alice = await cluster.user(a, "alice");
    await cluster.user(b, "bob");
    await cluster.user(b, "carol");
    assertEquals(await alice.next(), "joined bob");
    assertEquals(await alice.next(), "joined carol");
    const started = Date.now();
    await b.stop("SIGKILL"); // no goodbye: nothing is deleted or published
    const lines = [await alice.next(5_000), await alice.next(5_000)].sort();
    const elapsed = Date.now() - started;
    assertEquals(lines, ["left bob", "left carol"]);
    assert(elapsed < 1.5 * 4 / 3 * 1000 + 500, `took ${elapsed} ms`);
    assertEquals(await alice.ask("/users"), "users 1 alice");
    // The names are free again, on any server.
    const c = await cluster.addServer(["--expiry", "1.5"]);
    await cluster.user(c, "bob");
    assertEquals(await alice.next(), "joined bob");
    await cluster.user(a, "carol");
  },
  { ignore },
);

test(
  "lesson 20: Redis stopped: local chat goes on; restarted: the shared view comes back",
  async () => {
    await using cluster = await Cluster.start(2, ["--expiry", "1.5"]);
    const [a, b] = cluster.servers;
    const alice = await cluster.user(a, "alice");
    const carol = await cluster.user(a, "carol");
    const bob = await cluster.user(b, "bob");
    assertEquals(await alice.until("joined bob"), ["joined carol"]);
    assertEquals(await carol.next(), "joined bob");

    await cluster.redis.process.stop("SIGKILL");
    const away = "from [server] the other chat servers are out of reach: " +
      "only users on this server for now";
    assertEquals(await alice.until(away), ["left bob"]);
    assertEquals(await bob.until(away), ["left alice", "left carol"]);
    assertEquals(await alice.ask("/users"), "users 2 alice carol");
    assertEquals(await alice.ask("/to carol still here?"), "ok sent carol");
    assertEquals(await carol.until("from alice still here?"), ["left bob", away]);
    assertEquals(await alice.ask("/to bob hello?"), "error no-such-user bob is not here");
    // A newcomer is served too (the name is checked on this server only).
    await cluster.user(b, "dave");
    assertEquals(await bob.next(), "joined dave");
    for (const server of [a, b]) {
      assert(await server.waitForLine(/^redis: lost redis:\/\/127\.0\.0\.1:\d+ \(/));
    }

    // Redis is back on the same port, empty: the servers claim their names again.
    cluster.redis = await startRedis(cluster.redis.port);
    const back = "from [server] the other chat servers are back: /users lists everyone";
    // Each server rebuilds its view when it reconnects, and hears of the others' users as
    // they claim their names again: the joined lines may come before or after the notice.
    assertEquals(await alice.collect([back, "joined bob", "joined dave"], 15_000), [
      back,
      "joined bob",
      "joined dave",
    ]);
    assertEquals(await bob.collect([back, "joined alice", "joined carol"], 15_000), [
      back,
      "joined alice",
      "joined carol",
    ]);
    assertEquals(await alice.ask("/users"), "users 4 alice bob carol dave");
    assertEquals(await bob.ask("/users"), "users 4 alice bob carol dave");
    assertEquals(await alice.ask("/to bob you are back"), "ok sent bob");
    assertEquals(await bob.next(), "from alice you are back");
    for (const server of [a, b]) {
      assert(await server.waitForLine(/^redis: back at redis:\/\/127\.0\.0\.1:\d+ as server /));
      // Said once each way, however many reconnection attempts there were.
      assertEquals(server.lines.filter((line) => line.startsWith("redis: lost")).length, 1);
    }
  },
  { ignore },
);

Deno.test({
  name: "lesson 20: a slow network to Redis: slower answers; too slow: the server goes on alone",
  ignore,
  async fn() {
    await using cluster = await Cluster.start(1);
    const [b] = cluster.servers;
    const bob = await cluster.user(b, "bob");
    // Lesson 19's proxy between a second server and Redis, holding every piece 300 ms.
    const [slow, tooSlow] = [
      await LessonServer.start("lesson19-server", [
        "--to",
        `127.0.0.1:${cluster.redis.port}`,
        "--delay",
        "300",
        "--quiet",
      ]),
      await LessonServer.start("lesson19-server", [
        "--to",
        `127.0.0.1:${cluster.redis.port}`,
        "--delay",
        "3000",
        "--quiet",
      ]),
    ];
    cluster.servers.push(slow, tooSlow); // stopped at the end with the others
    const a = await LessonServer.start("lesson20-server", [
      "--redis",
      `redis://127.0.0.1:${slow.port}`,
    ]);
    cluster.servers.push(a);
    assert(await a.waitForLine(/^redis: connected to /, 15_000), a.lines.join("\n"));
    const started = Date.now();
    const alice = await cluster.user(a, "alice"); // SET, then PUBLISH: two slow round trips
    assert(Date.now() - started >= 4 * 300, `took ${Date.now() - started} ms`);
    assertEquals(await bob.next(), "joined alice");
    assertEquals(await alice.ask("/to bob slowly"), "ok sent bob");
    assertEquals(await bob.next(5_000), "from alice slowly");

    // Past the 2 s deadline of every command, Redis counts as away: said once, chat goes on.
    const c = await LessonServer.start("lesson20-server", [
      "--redis",
      `redis://127.0.0.1:${tooSlow.port}`,
    ]);
    cluster.servers.push(c);
    assert(
      await c.waitForLine(/^redis: cannot reach .*\(no answer in time\)/, 10_000),
      c.lines.join("\n"),
    );
    const carol = await cluster.user(c, "carol");
    const erin = await cluster.user(c, "erin");
    assertEquals(await carol.next(), "joined erin");
    assertEquals(await erin.ask("/users"), "users 2 carol erin");
  },
});

test(
  "lesson 20: lesson 12's terminal client, unchanged, against two lesson 20 servers",
  async () => {
    await using cluster = await Cluster.start(2);
    const [a, b] = cluster.servers;
    const bob = await cluster.user(b, "bob");
    const result = await runTask("lesson12-client", ["--port", String(a.port), "--name", "dave"], {
      stdin: "/users\n/to bob hello from the lesson 12 client\n",
    });
    assertEquals(result.stderr, "");
    assertEquals(
      result.stdout,
      "* you are dave: /help lists the commands\n* here (2): bob, dave\n* bye\n",
    );
    assertEquals(result.code, 0);
    assertEquals(await bob.next(), "joined dave");
    assertEquals(await bob.next(), "from dave hello from the lesson 12 client");
    assertEquals(await bob.next(), "left dave");
    // Lesson 20's own client is the same program.
    const again = await runTask("lesson20-client", ["--port", String(b.port), "--name", "erin"], {
      stdin: "/users\n",
    });
    assertEquals([again.code, again.stdout], [
      0,
      "* you are erin: /help lists the commands\n* here (2): bob, erin\n* bye\n",
    ]);
  },
  { ignore },
);

Deno.test({
  name: "lesson 20: junk on the Redis channels does not hurt the chat",
  ignore,
  async fn() {
    await using cluster = await Cluster.start(2);
    const [a, b] = cluster.servers;
    const alice = await cluster.user(a, "alice");
    const bob = await cluster.user(b, "bob");
    assertEquals(await alice.next(), "joined bob");
    const redis = createClient({ url: cluster.redis.url });
    await redis.connect();
    try {
      const id = (await redis.get("chat:name:bob"))!;
      assertMatch(id, /^\d+-[0-9a-f]{6}$/);
      for (const junk of ["not json", "{}", "x".repeat(100_000), '{"to":"bob","line":"a\\nb"}']) {
        await redis.publish("chat:events", junk);
        await redis.publish(`chat:to:${id}`, junk);
      }
      await redis.publish("chat:events", '{"server":"x","event":"joined","name":"bad name"}');
    } finally {
      redis.destroy();
    }
    assertEquals(await alice.ask("/to bob still fine"), "ok sent bob");
    assertEquals(await bob.next(), "from alice still fine");
    assertEquals(await bob.ask("/users"), "users 2 alice bob");
  },
});

Deno.test({
  name: "lesson 20: without Redis a server still serves its own users, and says so once",
  ignore: false,
  async fn() {
    const port = closedPort();
    await using server = await LessonServer.start("lesson20-server", [
      "--redis",
      `redis://127.0.0.1:${port}`,
    ]);
    assert(await server.waitForLine(/^redis: cannot reach /));
    const alice = await User.connect(server.port, "alice");
    const bob = await User.connect(server.port, "bob");
    try {
      assertEquals(await alice.next(), "joined bob");
      assertEquals(await bob.ask("/to alice hi"), "ok sent alice");
      assertEquals(await alice.next(), "from bob hi");
    } finally {
      alice.close();
      bob.close();
    }
    const result = await server.stop("SIGINT");
    assertEquals(result.code, 0);
    assertEquals(
      result.stdout.split("\n").filter((line) => line.startsWith("redis:")),
      [
        `redis: cannot reach redis://127.0.0.1:${port} (connection refused): chatting on this ` +
        "server only, trying again in the background",
      ],
    );
  },
});

Deno.test({
  name: "lesson 20: lesson20-cluster starts Redis and two servers; SIGTERM stops every one",
  ignore,
  async fn() {
    const { taskArgs } = await import("../tools/lesson_process.ts");
    const cluster = new ChildProgram("deno", [...taskArgs("lesson20-cluster"), "--port", "0"]);
    const users: User[] = [];
    try {
      assert(
        await cluster.waitForLine(/^Ctrl-C stops them all$/, 30_000),
        cluster.lines.join("\n"),
      );
      const pids = cluster.lines.flatMap((line) => [...line.matchAll(/\(pid (\d+)\)/g)])
        .map((match) => Number(match[1]));
      const ports = cluster.lines.flatMap((line) => line.match(/--port (\d+)$/)?.[1] ?? [])
        .map(Number);
      assertEquals([pids.length, ports.length], [3, 2]);
      assertMatch(cluster.lines[0], /^redis: redis-server on 127\.0\.0\.1:\d+ \(pid \d+\)/);
      users.push(await User.connect(ports[0], "alice"), await User.connect(ports[1], "bob"));
      assertEquals(await users[0].next(), "joined bob");
      assertEquals(await users[1].ask("/to alice hi"), "ok sent alice");
      assertEquals(await users[0].next(), "from bob hi");

      assertEquals(await cluster.stop("SIGTERM", 15_000), 0);
      await users[0].until("bye"); // after "left bob", if server 2 stopped first
      for (const pid of pids) {
        const ps = await new Deno.Command("ps", { args: ["-p", String(pid)], stdout: "null" })
          .output();
        assertEquals(ps.code, 1, `process ${pid} is still running`);
      }
    } finally {
      users.forEach((user) => user.close());
      // SIGTERM, not SIGKILL: the cluster must stop its own programs (Redis, the servers).
      await cluster.stop("SIGTERM", 15_000);
    }
  },
});

test(
  "lesson 20: Redis frozen (SIGSTOP): /name is answered, the server goes on alone and stops",
  async () => {
    await using cluster = await Cluster.start(1);
    const [a] = cluster.servers;
    const alice = await cluster.user(a, "alice");
    const bob = await cluster.user(a);
    // The connection stays open, but nothing answers: no error, no close, only silence.
    cluster.redis.process.signal("SIGSTOP");
    try {
      const started = Date.now();
      assertEquals(await bob.ask("/name bob", 6_000), "ok name bob");
      const elapsed = Date.now() - started;
      assert(elapsed >= 1_500 && elapsed < 5_000, `took ${elapsed} ms`);
      const away = "from [server] the other chat servers are out of reach: " +
        "only users on this server for now";
      assertEquals(await alice.until("joined bob", 5_000), [away]);
      assert(await a.waitForLine(/^redis: lost redis:\/\/.* \(no answer in time\)/));
      assertEquals(await bob.ask("/to alice still here"), "ok sent alice");
      assertEquals(await alice.next(), "from bob still here");
      // Shutdown does not wait forever for a Redis that does not answer.
      const stopping = Date.now();
      const result = await a.stop("SIGTERM", 15_000);
      assertEquals([result.code, result.timedOut], [0, false]);
      assert(Date.now() - stopping < 8_000, `stopped in ${Date.now() - stopping} ms`);
    } finally {
      cluster.redis.process.signal("SIGCONT");
    }
  },
  { ignore },
);

Deno.test("lesson 20: a malformed --redis URL is a usage error, before listening", async () => {
  for (const url of ["redis://127.0.0.1:99999", "redis://[bad", "http://127.0.0.1:6379"]) {
    const result = await runTask("lesson20-server", ["--port", "0", "--redis", url]);
    assertEquals(result.code, 2, url);
    assertEquals(result.stdout, "", url); // no "listening on"
    assertEquals(
      result.stderr.trim(),
      `--redis must be a URL such as redis://127.0.0.1:6379, got "${url}"`,
    );
  }
});

Deno.test("lesson 20: ChildProgram keeps only a program's first lines, and still sees later ones", async () => {
  const program = new ChildProgram("deno", [
    "eval",
    "for (let i = 1; i <= 1000; i++) console.log(`line ${i}`)",
  ]);
  try {
    assertEquals(await program.waitForLine(/^line 1000$/), "line 1000");
    assertEquals(await program.exited, 0);
    assertEquals(program.lines.length, 200);
    assertEquals(program.lines.at(-1), "line 200");
    // A line that never comes: the wait ends when the program's output does.
    assertEquals(await program.waitForLine(/^line 1001$/), undefined);
  } finally {
    await program.stop("SIGKILL");
  }
});

Deno.test("lesson 20: a Redis host outside the task's --allow-net is named in one line", async () => {
  // 10.1.2.3 is not in the task's --allow-net: Deno refuses before any packet is sent.
  await using server = await LessonServer.start("lesson20-server", [
    "--redis",
    "redis://10.1.2.3:6379",
  ]);
  assert(
    await server.waitForLine(
      "redis: cannot reach redis://10.1.2.3:6379 (not permitted: the task's --allow-net list " +
        "does not include 10.1.2.3): chatting on this server only, trying again in the background",
    ),
    server.lines.join("\n"),
  );
});

test(
  "lesson 20: at start, a server connects to Redis before it listens: one alice, not two",
  async () => {
    await using cluster = await Cluster.start(0);
    // Both servers at once; the moment each prints `listening on`, alice asks it for her name.
    const ask = async () => {
      const server = await LessonServer.start("lesson20-server", ["--redis", cluster.redis.url]);
      cluster.servers.push(server);
      const alice = await cluster.user(server);
      return { alice, answer: await alice.ask("/name alice") };
    };
    const [first, second] = await Promise.all([ask(), ask()]);
    assertEquals([first.answer, second.answer].sort(), [
      "error name-taken alice is taken",
      "ok name alice",
    ]);
    // The one who got the name keeps it: no `name-taken` once both rooms are in step.
    const winner = first.answer === "ok name alice" ? first.alice : second.alice;
    await winner.send("/to alice still mine");
    assertEquals(await winner.collect(["ok sent alice", "from alice still mine"], 5_000), [
      "from alice still mine",
      "ok sent alice",
    ]);
    for (const server of cluster.servers) {
      // Connected before it listened: said at once, after the `listening on` line.
      assertMatch(server.lines.slice(0, 2).join("\n"), /^listening on .*\nredis: connected to /);
    }
  },
  { ignore },
);

Deno.test({
  name: "lesson 20: a client renaming itself on A for 5 s cuts off none of B's users who read",
  ignore,
  async fn() {
    // Lesson 12's flood control would close the renamer after 5 names: lifted here, so
    // that B meets the burst a crowd of renamers (each within its budget) could make.
    const noFloodControl = ["--line-burst", "1000000", "--line-rate", "1000000"];
    noFloodControl.push("--name-burst", "1000000", "--name-rate", "1000000");
    await using cluster = await Cluster.start(2, noFloodControl);
    const [a, b] = cluster.servers;
    const readers: User[] = [];
    for (let i = 0; i < 100; i++) readers.push(await cluster.user(b, `r${i}`));
    // Each reader reads everything that comes, as fast as it comes (in chunks: the test
    // must not be the slow one), until its own ping.
    const ended = readers.map(() => "");
    const counts = readers.map(() => 0);
    const reading = readers.map(async (reader, i) => {
      const buffer = new Uint8Array(256 * 1024);
      const decoder = new TextDecoder();
      let tail = "";
      while (true) {
        const n = await reader.conn.read(buffer).catch(() => null);
        if (n === null) return ended[i] ||= "closed";
        const text = tail + decoder.decode(buffer.subarray(0, n), { stream: true });
        counts[i] += text.length - tail.length;
        if (text.includes("\nerror slow-reader")) return ended[i] = "error slow-reader";
        if (text.includes(`\nfrom r${i} ping\n`)) return;
        tail = text.slice(-64);
      }
    });
    // One client on A renames itself as fast as A takes it, for 5 s: each rename is a
    // `left` and a `joined` for every reader on B.
    const renamer = await cluster.user(a);
    const answers = new Uint8Array(64 * 1024); // read (and ignored), so A never cuts it off
    const draining = (async () => {
      while (await renamer.conn.read(answers).catch(() => null) !== null) { /* more */ }
    })();
    // 200,000 renames in one write: more than A handles in the test's time.
    const names = Array.from({ length: 200_000 }, (_, i) => `/name x${i}\n`).join("");
    const sending = writeAll(renamer.conn, encode(names)).catch(() => {}); // until A is stopped
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    // Every reader is still there and B still serves its own: each sends itself a ping,
    // and gets it within 10 s, while the renames still pour in.
    await Promise.all(readers.map((reader, i) => reader.send(`/to r${i} ping`).catch(() => {})));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("no ping within 10 s"), 10_000);
    });
    const outcome = await Promise.race([Promise.all(reading).then(() => "pinged"), late]);
    clearTimeout(timer);
    assertEquals(ended.filter((why) => why !== ""), []);
    assertEquals(outcome, "pinged");
    assert(Math.min(...counts) > 10_000, `characters per reader: at least ${Math.min(...counts)}`);
    await cluster.servers[0].stop("SIGKILL"); // A has renames left to handle: no need
    readers.forEach((reader) => reader.close());
    await Promise.all(reading);
    await Promise.all([sending, draining]);
  },
});

Deno.test({
  name: "lesson 20: mallory's /to flood from A does not cut off bob on B, who reads",
  ignore,
  async fn() {
    await using cluster = await Cluster.start(2);
    const [a, b] = cluster.servers;
    const bob = await cluster.user(b, "bob");
    const mallory = await cluster.user(a, "mallory");
    assertEquals(await bob.next(), "joined mallory");
    // 1,000 messages of 4 KB, in one go: A takes them as fast as it reads them.
    const text = "m".repeat(4000);
    const lines = Array.from({ length: 1000 }, (_, i) => `/to bob ${i} ${text}\n`).join("");
    const sending = writeAll(mallory.conn, encode(lines)).catch(() => {}); // she may be cut off
    // bob reads as fast as they come, while A answers mallory: each arrives once, in
    // order; what B could not hold is dropped, and bob is told how many.
    let sent = 0; // each `ok sent bob` (flood control at A may refuse some, or end her)
    let answered = false;
    let received = 0;
    let dropped = 0;
    const bobReads = (async () => {
      let last = -1;
      while (!answered || received + dropped < sent) {
        const line = await bob.next(15_000) ?? "(closed)";
        if (line === "ok sent bob" || line === "from bob wake up") continue; // see below
        assert(!line.startsWith("error") && line !== "(closed)", `bob got ${line}`);
        const notice = line.match(
          /^from \[server\] (\d+) messages? to you (?:was|were) dropped: too many arrived at once$/,
        );
        if (notice) {
          dropped += Number(notice[1]);
          continue;
        }
        const [, id, body] = line.match(/^from mallory (\d+) (m+)$/) ?? [];
        assertEquals(body, text);
        assert(Number(id) > last, `${id} after ${last}`);
        last = Number(id);
        received++;
      }
    })();
    bobReads.catch(() => {}); // its failure is reported below, where it is awaited
    for (let answers = 0; answers < 1000; answers++) {
      const answer = await mallory.next(15_000);
      if (answer === null) break;
      if (answer === "ok sent bob") sent++;
    }
    answered = true;
    await sending;
    // A line of bob's own, in case his read waits for nothing more: it ends that wait.
    await bob.send("/to bob wake up");
    await bobReads;
    assert(sent > 0);
    assertEquals(received + dropped, sent);
    // bob is still here, and his server still passes messages on.
    const carol = await cluster.user(a, "carol");
    await bob.until("joined carol");
    assertEquals(await bob.ask("/to carol still here"), "ok sent carol");
    await carol.until("from bob still here", 15_000);
  },
});

test(
  "lesson 20: a /name while the room is still setting up with Redis is decided in Redis",
  async () => {
    await using cluster = await Cluster.start(1);
    await cluster.user(cluster.servers[0], "alice");
    // A slow way to Redis (lesson 19's proxy, every piece held 500 ms): setting up takes
    // several round trips, longer than the 4 s a server waits at most before it listens.
    const slow = await LessonServer.start("lesson19-server", [
      "--to",
      `127.0.0.1:${cluster.redis.port}`,
      "--delay",
      "500",
      "--quiet",
    ]);
    cluster.servers.push(slow);
    const a = await LessonServer.start("lesson20-server", [
      "--redis",
      `redis://127.0.0.1:${slow.port}`,
    ]);
    cluster.servers.push(a);
    // At once, before the room is in step: the answer waits, and is Redis's.
    const other = await cluster.user(a);
    assertEquals(await other.ask("/name alice", 15_000), "error name-taken alice is taken");
    assertEquals(await other.ask("/name bob", 15_000), "ok name bob");
    assert(await a.waitForLine(/^redis: connected to /), a.lines.join("\n"));
    assertEquals(a.lines.filter((line) => line.startsWith("redis: cannot reach")), []);
  },
  { ignore },
);
