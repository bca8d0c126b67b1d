/**
 * Loaded before each server that `deno task bench-echo` measures
 * (`deno run --preload`, `node --import`): the server itself is unchanged.
 *
 * For each `sample` line on stdin it writes one line on stderr,
 * `bench-probe {"cpuMs":…,"rss":…}`: the CPU time the whole process has used
 * so far (every thread, so all of lesson 10's workers) and its resident
 * memory in bytes. Why not read /proc/PID/stat from the bench? Deno allows
 * reading /proc only with --allow-all, and the bench must not need that.
 * Written with node:process so that the same file works in Deno and in Node.
 *
 * @module
 */
import process from "node:process";

/** Answers one line of the bench: `sample` → one `bench-probe` line on stderr. */
function answer(line) {
  if (line !== "sample") return;
  const { user, system } = process.cpuUsage(); // microseconds
  const sample = { cpuMs: (user + system) / 1000, rss: process.memoryUsage().rss };
  process.stderr.write(`bench-probe ${JSON.stringify(sample)}\n`);
}

/** Calls `answer` for each line of `chunks` (text), until they end. */
async function eachLine(chunks) {
  let pending = "";
  for await (const text of chunks) {
    pending += text;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      answer(pending.slice(0, end));
      pending = pending.slice(end + 1);
    }
    if (pending.length > 1024) pending = ""; // not our protocol: drop it
  }
}

// When the bench closes our stdin, the loop ends and the server can exit.
// In Deno, a preload's pending work runs to the end before the main module
// starts, and a read of stdin never ends: the server would not start until
// the bench closed our stdin. So start reading from a timer that does not
// keep the process alive (unref), which fires once the server is running.
if (globalThis.Deno) {
  const { Deno } = globalThis;
  const read = () => eachLine(Deno.stdin.readable.pipeThrough(new TextDecoderStream()));
  Deno.unrefTimer(setTimeout(read, 100));
} else {
  eachLine(process.stdin.setEncoding("utf8"));
}
