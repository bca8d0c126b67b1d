/**
 * `deno task tour`: every lesson, in order, for real.
 *
 * For each lesson it runs the exchanges its README promises (the `console
 * checked` blocks), each server on a free port, and prints what each program
 * printed. A lesson is ok when every output matches its README.
 */
import { bold, green, red } from "@std/fmt/colors";
import { type BlockRun, normalise, runCheckedBlocks } from "./transcripts.ts";

const lessonsDir = new URL("../lessons/", import.meta.url);
const lessons = [...Deno.readDirSync(lessonsDir)]
  .filter((entry) => entry.isDirectory && /^\d\d-/.test(entry.name))
  .map((entry) => entry.name)
  .sort();

let ok = 0;
for (const lesson of lessons) {
  const readme = await Deno.readTextFile(new URL(`${lesson}/README.md`, lessonsDir));
  const title = readme.match(/^# (.*)$/m)?.[1] ?? lesson;
  console.log(bold(`\n== ${title} ==`));
  let runs: BlockRun[];
  try {
    runs = await runCheckedBlocks(readme);
  } catch (error) {
    console.log(red(`  could not run: ${error instanceof Error ? error.message : error}`));
    continue;
  }
  if (runs.length === 0) {
    console.log(red("  the README has no checked transcript"));
    continue;
  }
  // Servers finish last; show each in README order, with the real output.
  for (const run of runs) {
    // Every server runs on a free port, so a proxy's --to is the server above, not the README's port.
    const relay = /\s--to\s/.test(run.block.command)
      ? "   # here: to the server above, on its port"
      : "";
    console.log(`$ ${run.block.command}${relay}`);
    for (const line of run.actual) console.log(`  ${line}`);
    if (!run.ok) {
      console.log(red(`  ^ differs from README line ${run.block.line}; the README expects:`));
      for (const line of run.block.expected) console.log(red(`  ${normalise(line)}`));
    }
  }
  const good = runs.every((run) => run.ok);
  console.log(good ? green("ok") : red("FAILED"));
  if (good) ok++;
}

console.log(bold(`\n${lessons.length} lessons, ${ok} ok`));
if (ok !== lessons.length) Deno.exit(1);
