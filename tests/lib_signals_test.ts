/**
 * lib/signals.ts in a child program: what one Ctrl-C, its copy, and a
 * deliberate second Ctrl-C do. (Signals go to a process, so each case runs
 * its own `deno eval`; the main test process never gets one.)
 */
import { assertEquals } from "@std/assert";

const SIGNALS = new URL("../lib/signals.ts", import.meta.url).href;

/** Runs a program that waits for shutdown, sends it `delays`-spaced SIGINTs. */
async function run(
  delaysMs: number[],
  honourHurry = true,
): Promise<{ code: number; stdout: string }> {
  const program = `
    import { shutdownRequested } from "${SIGNALS}";
    const { hurry } = await shutdownRequested();
    console.log("stopping");
    // A grace period of up to 2 s, cut short by a second Ctrl-C.
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 2_000);
      if (${honourHurry}) hurry.addEventListener("abort", () => { clearTimeout(timer); resolve(null); });
    });
    console.log(hurry.aborted ? "summary (hurried)" : "summary");
  `;
  const child = new Deno.Command("deno", {
    args: ["eval", "--no-prompt", `console.log("ready");` + program],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  try {
    while (!stdout.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += value;
    }
    for (const delay of delaysMs) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill("SIGINT");
    }
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += value;
    }
    return { code: (await child.status).code, stdout };
  } finally {
    clearTimeout(killer);
    reader.releaseLock();
    await child.status;
  }
}

Deno.test("signals: one Ctrl-C and its copy 5 ms later: the summary and exit 0", async () => {
  const { code, stdout } = await run([200, 5]);
  assertEquals([code, stdout], [0, "ready\nstopping\nsummary\n"]);
});

Deno.test("signals: a deliberate second Ctrl-C says so and hurries; the summary still comes", async () => {
  const { code, stdout } = await run([200, 600]);
  assertEquals(code, 0);
  assertEquals(
    stdout,
    "ready\nstopping\n" +
      "SIGINT again: not waiting for clients any longer (once more to exit at once)\n" +
      "summary (hurried)\n",
  );
});

Deno.test("signals: a third Ctrl-C exits at once with 130, and says so", async () => {
  const program = await run([200, 400, 400], false);
  assertEquals(program.code, 130);
  assertEquals(
    program.stdout.split("\n").at(-2),
    "SIGINT a third time: exiting at once, without a summary",
  );
});
