/**
 * Lesson 13 in a real browser: Debian's Chromium, headless, driven by
 * puppeteer-core (which never downloads a browser of its own).
 *
 * Two pages and one terminal client (lesson13-client) chat together. The
 * screenshots land in tests/artifacts/ (git-ignored): look at them.
 *
 * Without Chromium the test is skipped with a note saying how to install it,
 * except in CI (CI=true), where it must run.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import type { Browser, Page } from "puppeteer-core";
import { taskArgs } from "../tools/lesson_process.ts";
import { ARTIFACTS, launchChromium, newProfile, skipWithoutChromium } from "./_chromium.ts";
import { LessonServer } from "./_helpers.ts";
import { RawServer } from "./_raw_server.ts";

/**
 * The page's `document`, as far as the callbacks below use it: they run in
 * the browser, not in Deno (this file is type-checked without the DOM's types).
 */
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
};
interface PageElement {
  textContent: string | null;
  querySelector(selector: string): PageElement | null;
}

const skip = skipWithoutChromium("lesson 13 browser test");

/** lesson13-client running with its standard input open, typed into line by line. */
class TerminalUser {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #text = "";
  #wake: (() => void)[] = [];
  #reading: Promise<void>;

  constructor(args: string[]) {
    this.#child = new Deno.Command("deno", {
      args: [...taskArgs("lesson13-client"), ...args],
      cwd: new URL("../", import.meta.url),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    const stdout = this.#child.stdout;
    this.#reading = (async () => {
      for await (const piece of stdout.pipeThrough(new TextDecoderStream())) {
        this.#text += piece;
        this.#wake.splice(0).forEach((wake) => wake());
      }
    })();
  }

  get lines(): string[] {
    return this.#text.split("\n");
  }

  async type(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Waits (at most 10 s) until the client has printed `line`. */
  async waitFor(line: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!this.lines.includes(line)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`the terminal never printed ${JSON.stringify(line)}:\n${this.#text}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Ends standard input (the client then says /bye); kills it if it is not gone in 10 s. */
  async stop(): Promise<Deno.CommandStatus> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 10_000);
    const status = await this.#child.status;
    clearTimeout(timer);
    await this.#reading;
    return status;
  }
}

/** Names in a page's user list, as shown. */
const userList = (page: Page) => page.evaluate(shownUsers);

/** Runs in the page: each row's name, and `(you)` on your own. */
function shownUsers(): string {
  return JSON.stringify(
    [...document.querySelectorAll("#users li[data-name]")].map((row) =>
      (row.querySelector(".user-name")?.textContent ?? "") +
      (row.querySelector(".tag") ? " (you)" : "")
    ),
  );
}

/** Waits until the page's user list shows exactly `names` (you first, marked "you"). */
async function waitForUsers(page: Page, names: string[]): Promise<void> {
  try {
    await page.waitForFunction(`(${shownUsers})() === ${JSON.stringify(JSON.stringify(names))}`);
  } catch (error) {
    throw new Error(`user list ${await userList(page)}, not ${JSON.stringify(names)}: ${error}`);
  }
}

async function join(page: Page, name: string): Promise<void> {
  await page.$eval("#name", (input) => (input as unknown as { value: string }).value = "");
  await page.type("#name", name);
  await page.click("#join-button");
}

async function say(page: Page, text: string): Promise<void> {
  await page.type("#text", text);
  await page.keyboard.press("Enter");
  // Our bubble gets its tick when the server answers `ok sent`.
  await page.waitForFunction(
    (sent: string) => {
      const mine = [...document.querySelectorAll("#messages .message.mine")];
      const last = mine.at(-1);
      return last?.querySelector(".text")?.textContent === sent &&
        last.querySelector(".meta")?.textContent?.endsWith("✓");
    },
    {},
    text,
  );
}

/** The texts of the open conversation's bubbles, theirs as `<` and ours as `>`. */
const bubbles = (page: Page) =>
  page.$$eval(
    "#messages .message",
    (items) =>
      items.map((item) =>
        `${item.classList.contains("mine") ? ">" : "<"} ${item.querySelector(".text")?.textContent}`
      ),
  );

const textOf = (page: Page, selector: string) =>
  page.$eval(selector, (element) => element.textContent ?? "");

Deno.test({
  name: "lesson 13: two browser tabs and a terminal chat together",
  ignore: skip,
}, async () => {
  const profile = await newProfile();
  let server = await LessonServer.start("lesson13-server");
  const browser = await launchChromium(profile);
  let carol: TerminalUser | undefined;
  // A foreign site, for the Origin check: any page that is not the chat's own.
  const foreign = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("<p>another site</p>", { headers: { "content-type": "text/html" } }),
  );
  const problems: string[] = [];
  try {
    assert(await server.waitForLine(/^page at http:\/\/127\.0\.0\.1:\d+\/$/));
    const url = server.lines.find((line) => line.startsWith("page at "))!.slice(8);
    const httpPort = new URL(url).port;

    /** A tab of its own (its own cookies and storage), at a given size. */
    const tab = async (width: number, height: number, watch = true) => {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      await page.setViewport({ width, height, deviceScaleFactor: 1 });
      page.on("dialog", (dialog) => {
        problems.push(`a dialog opened: ${dialog.message()}`);
        dialog.dismiss().catch(() => {});
      });
      page.on("pageerror", (error) => problems.push(`page error: ${error}`));
      page.on("console", (message) => {
        if (watch && message.type() === "error") problems.push(`console: ${message.text()}`);
      });
      await page.goto(url);
      return { context, page };
    };
    const a = await tab(1000, 640);
    const alice = a.page;
    const b = await tab(390, 720); // a phone
    const bob = b.page;

    // Errors show inline, as text: a name that is not allowed, a name that is taken.
    await join(alice, "<b>al ice</b>");
    await alice.waitForSelector("#join-error:not([hidden])");
    assertEquals(await textOf(alice, "#join-error"), "a name is 1-32 letters, digits, _ or -");
    await join(alice, "alice");
    await alice.waitForFunction(() => document.querySelector("#me-name")?.textContent === "alice");
    await join(bob, "alice");
    await bob.waitForSelector("#join-error:not([hidden])");
    assertEquals(await textOf(bob, "#join-error"), "alice is taken: pick another name");
    await bob.screenshot({ path: new URL("lesson13-name-taken.png", ARTIFACTS).pathname });
    await join(bob, "bob");
    await bob.waitForFunction(() => document.querySelector("#me-name")?.textContent === "bob");

    // A terminal user joins the same room.
    carol = new TerminalUser(["--port", String(server.port), "--name", "carol"]);
    await carol.waitFor("* you are carol: /help lists the commands");
    await waitForUsers(alice, ["alice (you)", "bob", "carol"]);
    await waitForUsers(bob, ["bob (you)", "alice", "carol"]);
    assertEquals(await textOf(alice, "#count"), "3");
    await carol.type("/users");
    await carol.waitFor("* here (3): alice, bob, carol");

    // alice clicks bob's name: their conversation opens; they talk.
    await alice.click('#users li[data-name="bob"] button');
    await alice.waitForFunction(() =>
      document.querySelector("#partner-name")?.textContent === "bob"
    );
    await say(alice, "Hi bob! Did you see? This page talks to the chat server.");
    // bob sees an unread count on alice, and in the tab's title.
    await bob.waitForFunction(() =>
      document.querySelector('#users li[data-name="alice"] .badge')?.textContent === "1"
    );
    assertEquals(await bob.title(), "(1) Lesson 13 chat");
    await bob.click('#users li[data-name="alice"] button');
    await bob.waitForFunction(() =>
      document.querySelector("#partner-name")?.textContent === "alice"
    );
    assertEquals(await bob.$('#users li[data-name="alice"] .badge'), null);
    assertEquals(await bubbles(bob), [
      "< Hi bob! Did you see? This page talks to the chat server.",
    ]);
    await say(bob, "I did: one WebSocket message is one line of lesson 12.");
    await say(bob, "And the gateway turns it into TCP for the server 🎉");
    await alice.waitForFunction(() => document.querySelectorAll("#messages .message").length === 3);
    await say(alice, "Nice. Let's ask carol, she is in a terminal.");
    assertEquals(await bubbles(alice), [
      "> Hi bob! Did you see? This page talks to the chat server.",
      "< I did: one WebSocket message is one line of lesson 12.",
      "< And the gateway turns it into TCP for the server 🎉",
      "> Nice. Let's ask carol, she is in a terminal.",
    ]);
    await bob.waitForFunction(() => document.querySelectorAll("#messages .message").length === 4);
    await alice.screenshot({ path: new URL("lesson13-two-users.png", ARTIFACTS).pathname });
    await bob.screenshot({ path: new URL("lesson13-phone.png", ARTIFACTS).pathname });

    // Terminal → browser, and back.
    await carol.type("/to alice hello from the terminal");
    await alice.waitForFunction(() =>
      document.querySelector('#users li[data-name="carol"] .badge')?.textContent === "1"
    );
    await alice.click('#users li[data-name="carol"] button');
    assertEquals(await bubbles(alice), ["< hello from the terminal"]);
    await say(alice, "hi carol, from the browser");
    await carol.waitFor("alice: hi carol, from the browser");

    // Markup in a message is text: shown as typed, no element made, nothing run.
    const attack = "<img src=x onerror=alert(1)>";
    await say(bob, attack);
    await alice.waitForFunction(() =>
      document.querySelector('#users li[data-name="bob"] .badge')?.textContent === "1"
    );
    await alice.click('#users li[data-name="bob"] button');
    assertEquals((await bubbles(alice)).at(-1), `< ${attack}`);
    assertEquals(await alice.$$eval("img", (images) => images.length), 0);
    await carol.type(`/to alice ${attack}`);
    await carol.type(`/to bob <script>alert(2)</script>`);
    await bob.waitForFunction(() =>
      document.querySelector('#users li[data-name="carol"] .badge')?.textContent === "1"
    );
    await bob.click("#back"); // on a phone the list and the conversation take turns
    await bob.screenshot({ path: new URL("lesson13-phone-list.png", ARTIFACTS).pathname });
    await bob.click('#users li[data-name="carol"] button');
    assertEquals(await bubbles(bob), ["< <script>alert(2)</script>"]);
    assertEquals(await bob.$$eval("#messages script, img", (found) => found.length), 0);

    // bob closes his tab: he leaves everyone's list, and carol's terminal says so.
    await b.context.close();
    await waitForUsers(alice, ["alice (you)", "carol"]);
    await carol.waitFor("* bob left");
    assert(await server.waitForLine("bob left: hung up"));

    // A page from another origin cannot open the chat's WebSocket: 403.
    const elsewhere = await tab(600, 400, false); // its console reports the 403: expected
    await elsewhere.page.goto(`http://127.0.0.1:${foreign.addr.port}/`);
    const opened = await elsewhere.page.evaluate((ws: string) =>
      new Promise<string>((resolve) => {
        const socket = new WebSocket(ws);
        socket.onopen = () => resolve("open");
        socket.onclose = () => resolve("refused");
      }), `ws://127.0.0.1:${httpPort}/ws`);
    assertEquals(opened, "refused");
    assert(
      await server.waitForLine(
        new RegExp(
          `^refused a WebSocket from .*: origin "http://127\\.0\\.0\\.1:${foreign.addr.port}"$`,
        ),
      ),
    );
    await elsewhere.context.close();

    // The server goes away: a clear notice and a Reconnect button.
    const chatPort = server.port;
    assertEquals((await server.stop("SIGINT")).code, 0);
    assertEquals((await carol.stop()).code, 0);
    await alice.waitForSelector("#notice:not([hidden])");
    assertMatch(await textOf(alice, "#notice-text"), /^Disconnected: the chat server said bye/);
    await waitForUsers(alice, []);
    await alice.screenshot({ path: new URL("lesson13-disconnected.png", ARTIFACTS).pathname });
    // It comes back on the same ports; Reconnect joins again under the same name.
    server = await LessonServer.start("lesson13-server", [
      "--port",
      String(chatPort),
      "--http-port",
      httpPort,
    ]);
    await alice.click("#reconnect");
    await alice.waitForSelector("#notice", { hidden: true });
    await waitForUsers(alice, ["alice (you)"]);
    assertEquals(await textOf(alice, "#me-name"), "alice");

    assertEquals(problems, []);
  } finally {
    await browser.close();
    await carol?.stop();
    await foreign.shutdown();
    await server.stop();
    await Deno.remove(profile, { recursive: true });
  }
});

Deno.test({
  name: "lesson 13: after a descriptor exhaustion (prlimit), a browser loads the page and chats",
  ignore: skip,
}, async () => {
  const profile = await newProfile();
  // Issue 17's attack, scaled down: 150 connections held on the page port of
  // a server that may open 96 files. The old server (Deno.serve) died of it.
  await using server = await RawServer.start("lesson13-server", [], { nofile: 96 });
  const conns: Deno.TcpConn[] = [];
  let browser: Browser | undefined;
  try {
    assert(await server.waitFor(/^page at http:\/\/127\.0\.0\.1:\d+\/$/m));
    const url = server.stdout.match(/^page at (http:\/\/127\.0\.0\.1:\d+\/)$/m)![1];
    const port = Number(new URL(url).port);
    for (let i = 0; i < 150; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
      if (!conn) throw new Error(`connection ${i} failed:\n${(await server.stop()).stderr}`);
      conns.push(conn);
    }
    assert(await server.waitFor(/^out of file descriptors with /m), server.stdout);
    for (const conn of conns) conn.close();
    conns.length = 0;

    browser = await launchChromium(profile);
    const tab = async (name: string) => {
      const context = await browser!.createBrowserContext();
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      await page.goto(url);
      await join(page, name);
      await page.waitForFunction(
        (me: string) => document.querySelector("#me-name")?.textContent === me,
        {},
        name,
      );
      return page;
    };
    const alice = await tab("alice");
    const bob = await tab("bob");
    await alice.waitForSelector('#users li[data-name="bob"] button');
    await alice.click('#users li[data-name="bob"] button');
    await say(alice, "still here after the flood");
    await bob.waitForFunction(() =>
      document.querySelector('#users li[data-name="alice"] .badge')?.textContent === "1"
    );
    const result = await server.stop();
    assert(!/Uncaught|error:/i.test(result.stderr), result.stderr);
  } finally {
    for (const conn of conns) conn.close();
    await browser?.close();
    await Deno.remove(profile, { recursive: true });
  }
});
