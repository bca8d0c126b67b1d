/**
 * Lesson 13's page in a big room: the user list comes in pages of 100 names
 * (`users TOTAL NAME …`), so the page shows the total, the first page, and
 * the next one when asked. Debian's Chromium, headless, as in
 * lesson13_browser_test.ts (skipped without it, except in CI).
 */
import { assert, assertEquals } from "@std/assert";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { LineDecoder } from "../lib/lines.ts";
import {
  ARTIFACTS,
  launchChromium,
  needChromium,
  newProfile,
  skipWithoutChromium,
} from "./_chromium.ts";
import { closeRaw, encode, LessonServer, rawConnect } from "./_helpers.ts";

/** The page's `document`, as far as the callbacks below use it (they run in the browser). */
declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
};

const skip = skipWithoutChromium("lesson 13 users page test");

Deno.test({
  name: "lesson 13: the page shows a room of 151 a page at a time, with the total",
  ignore: skip,
}, async () => {
  needChromium();
  await using server = await LessonServer.start("lesson13-server");
  assert(await server.waitForLine(/^page at http:\/\/127\.0\.0\.1:\d+\/$/));
  const url = server.lines.find((line) => line.startsWith("page at "))!.slice(8);

  // 150 terminal users; each one reads what it is sent (or it would be cut off).
  const names = Array.from({ length: 150 }, (_, i) => `p${String(i).padStart(3, "0")}`);
  const conns: Deno.TcpConn[] = [];
  const draining: Promise<void>[] = [];
  const profile = await newProfile();
  const browser = await launchChromium(profile);
  try {
    for (const name of names) {
      const conn = await rawConnect(server.port);
      conns.push(conn);
      await writeAll(conn, encode(`/name ${name}\n`));
      const decoder = new LineDecoder();
      const buffer = new Uint8Array(16 * 1024);
      const n = await readWithTimeout(conn, buffer, 10_000, "the server");
      assertEquals(decoder.push(buffer.subarray(0, n ?? 0))[0], `ok name ${name}`);
      draining.push((async () => {
        try {
          while (await conn.read(buffer) !== null) { /* joined, left: read and dropped */ }
        } catch {
          // closed at the end of the test
        }
      })());
    }

    const page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error}`));
    await page.goto(url);
    await page.type("#name", "web");
    await page.click("#join-button");
    const rows = () =>
      page.evaluate(() => document.querySelectorAll("#users li[data-name]").length);
    // The total, you, and the first page of 100 (p000 to p099); the rest on request.
    await page.waitForFunction(() => document.querySelector("#count")?.textContent === "151");
    await page.waitForFunction(() =>
      document.querySelectorAll("#users li[data-name]").length === 101
    );
    assertEquals(
      await page.$eval("#users li.nobody", (row) => row.textContent),
      "50 more not shown. Show 100 more",
    );
    assertEquals(await page.$('#users li[data-name="p099"]') !== null, true);
    assertEquals(await page.$('#users li[data-name="p100"]'), null);
    await page.$eval("#users li.nobody", (row) => row.scrollIntoView());
    await page.screenshot({ path: new URL("lesson13-users-first-page.png", ARTIFACTS).pathname });
    await page.click("#users li.nobody button");
    await page.waitForFunction(() =>
      document.querySelectorAll("#users li[data-name]").length === 151
    );
    assertEquals(await rows(), 151);
    assertEquals(await page.$("#users li.nobody"), null); // nothing more to show
    assertEquals(await page.$eval("#count", (count) => count.textContent), "151");
    await page.screenshot({ path: new URL("lesson13-users-pages.png", ARTIFACTS).pathname });
    assertEquals(problems, []);
  } finally {
    await browser.close();
    conns.forEach(closeRaw);
    await Promise.all(draining);
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
});
