/**
 * Lesson 21 in a real browser: Chromium (Debian's, through puppeteer-core)
 * loads the hand-written server's page, and its stylesheet and picture come
 * over the same server. Skipped with a line saying how to install Chromium
 * when it is missing (outside CI).
 */
import { assert, assertEquals } from "@std/assert";
import { ARTIFACTS, launchChromium, newProfile, skipWithoutChromium } from "./_chromium.ts";
import { LessonServer } from "./_helpers.ts";

/** Just what this test touches of the page's DOM (the test has no DOM types). */
declare const document: {
  getElementById(id: string): { complete: boolean; naturalWidth: number } | null;
  querySelector(selector: string): Element | null;
};
declare function getComputedStyle(element: Element): { color: string };
interface Element {
  textContent: string | null;
}

const skip = skipWithoutChromium("lesson 21 browser test");

Deno.test({
  name: "lesson 21: Chromium loads the page, its stylesheet and its picture from the server",
  ignore: skip,
}, async () => {
  const profile = await newProfile();
  await using server = await LessonServer.start("lesson21-server");
  const browser = await launchChromium(profile);
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    const statuses: string[] = [];
    page.on("response", (response) => {
      statuses.push(`${response.status()} ${new URL(response.url()).pathname}`);
    });
    await page.goto(`http://127.0.0.1:${server.port}/`, { waitUntil: "load" });
    assertEquals(await page.title(), "Lesson 21: HTTP by hand");
    // The picture loaded (an image that failed has no natural width).
    const logo = await page.evaluate(() => {
      const image = document.getElementById("logo");
      return image ? { complete: image.complete, width: image.naturalWidth } : null;
    });
    assertEquals(logo, { complete: true, width: 120 });
    // The stylesheet applied: the heading's colour is the one in style.css (#0b6e4f).
    const color = await page.evaluate(() => getComputedStyle(document.querySelector("h1")!).color);
    assertEquals(color, "rgb(11, 110, 79)");
    // "Grüße" came through as UTF-8 (the page's charset, and Content-Type's).
    const text = await page.evaluate(() => document.querySelector("p + p")?.textContent ?? "");
    assert(text.startsWith("Grüße"), text);
    for (const path of ["/", "/style.css", "/logo.svg"]) {
      assert(statuses.includes(`200 ${path}`), statuses.join(", "));
    }
    await page.screenshot({ path: new URL("lesson21-page.png", ARTIFACTS).pathname });
    // /echo shows what the browser sent, headers in order.
    await page.goto(`http://127.0.0.1:${server.port}/echo`, { waitUntil: "load" });
    const echoed = JSON.parse(
      await page.evaluate(() => document.querySelector("body")!.textContent ?? ""),
    );
    assertEquals([echoed.method, echoed.target], ["GET", "/echo"]);
    assert(
      echoed.headers.some(([name]: [string]) => name === "User-Agent"),
      JSON.stringify(echoed),
    );
  } finally {
    await browser.close();
    await Deno.remove(profile, { recursive: true });
  }
  // Keep-alive: fewer connections than requests (Chromium opens a second
  // one to fetch the stylesheet and the picture at once, and reuses them).
  const requests = server.lines.filter((line) => / (GET|HEAD) \S+ \d{3}$/.test(line));
  const ports = new Set(requests.map((line) => line.split(" ")[0]));
  assert(requests.length >= 4 && ports.size < requests.length, server.lines.join("\n"));
});
