/**
 * Debian's Chromium for the browser tests (lessons 13 and 21), through
 * puppeteer-core, which never downloads a browser of its own. One place for
 * where it is, whether a test runs without it, and how it is started: a
 * fresh profile, and nothing that talks to the internet.
 */
import puppeteer, { type Browser } from "puppeteer-core";

export const CHROMIUM = "/usr/bin/chromium";
/** Where the tests keep profiles and screenshots (git-ignored). */
export const ARTIFACTS = new URL("./artifacts/", import.meta.url);
const inCI = Deno.env.get("CI") === "true";
const hasChromium = await Deno.stat(CHROMIUM).then(() => true, (error) => {
  if (error instanceof Deno.errors.NotFound) return false;
  throw error; // e.g. no permission to look: that is a broken setup, not a missing browser
});

/**
 * True if a browser test of `what` (e.g. "lesson 13 browser test") must be
 * skipped: no Chromium, and not in CI (where a missing Chromium is a
 * failure, see {@linkcode needChromium}). Says so once, with how to install it.
 */
export function skipWithoutChromium(what: string): boolean {
  const skip = !hasChromium && !inCI;
  if (skip) {
    console.log(
      `${what} skipped: no Chromium at ${CHROMIUM}. Install it with: sudo apt-get install chromium`,
    );
  }
  return skip;
}

/** Fails the test (in CI) when Chromium is missing. */
export function needChromium(): void {
  if (!hasChromium) {
    throw new Error(`CI=true but no Chromium at ${CHROMIUM}: apt-get install chromium`);
  }
}

/** A fresh, empty profile directory under tests/artifacts. */
export async function newProfile(): Promise<string> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  return await Deno.makeTempDir({ dir: ARTIFACTS.pathname, prefix: "chromium-profile-" });
}

/** Starts headless Chromium with `profile`, talking DevTools over a pipe, not a TCP port. */
export async function launchChromium(profile: string): Promise<Browser> {
  needChromium();
  return await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    pipe: true,
    args: [
      "--headless=new",
      "--no-sandbox", // Chromium as root (CI) needs it
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      // Without these, Chromium tries the internet at start, and this machine has none.
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
