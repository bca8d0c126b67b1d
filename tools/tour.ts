/**
 * `deno task tour`: every lesson, in order, for real.
 *
 * For each lesson it runs the exchanges its README promises (the `console
 * checked` blocks), each server on a free port, and prints what each program
 * printed. A lesson is ok when every output matches its README.
 *
 * `deno task tour 05 17` runs only those lessons. Colour only on a terminal
 * (tools/colors.ts): `deno task tour > tour.txt` is plain text.
 */
import { bold, green, red } from "./colors.ts";
import { type BlockRun, normalise, runCheckedBlocks } from "./transcripts.ts";

const USAGE = `Usage: deno task tour [NN ...]

Runs every lesson's server and client in order (or only lessons NN ...), as its README shows
them, and says for each lesson whether what they printed matches the README.

Example: deno task tour 05 17`;

// A leading `--` is ignored, as by every program of the course.
const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
if (args.includes("--help") || args.includes("-h")) {
  console.log(USAGE);
  Deno.exit(0);
}
const lessonsDir = new URL("../lessons/", import.meta.url);
const lessons = [...Deno.readDirSync(lessonsDir)]
  .filter((entry) => entry.isDirectory && /^\d\d-/.test(entry.name))
  .map((entry) => entry.name)
  .filter((name) => args.length === 0 || args.includes(name.slice(0, 2)))
  .sort();
if (lessons.length === 0) {
  console.error(
    `no lesson ${args.join(", ")}: give two-digit lesson numbers, e.g. 05 (see --help)`,
  );
  Deno.exit(2);
}

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
