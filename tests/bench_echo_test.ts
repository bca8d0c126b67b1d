/**
 * `deno task bench-echo`, in its quickest mode against two servers: the
 * tables have a row per server and a positive number in every cell. (What the
 * numbers are is for the benchmark to measure, not for a test to assert.)
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { runTask } from "./_helpers.ts";

const TASK = "bench-echo";

/** The rows of the markdown table whose header starts with `| first |`. */
function tableRows(text: string, first: string): string[][] {
  const lines = text.split("\n");
  const start = lines.findIndex((line) => line.startsWith(`| ${first} `));
  assert(start >= 0, `no table starting with "${first}" in:\n${text}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(line.slice(1, -1).split("|").map((cell) => cell.trim()));
  }
  return rows;
}

/** "12,345 (1.00×)" → [12345, 1]; "1.51" → [1.51, undefined]. */
function parseCell(cell: string): [number, number | undefined] {
  const match = cell.match(/^([\d,]+(?:\.\d+)?)(?: \((\d+\.\d\d)×\))?$/);
  if (!match) throw new Error(`not a number: "${cell}"`);
  return [Number(match[1].replaceAll(",", "")), match[2] ? Number(match[2]) : undefined];
}

Deno.test("bench-echo --quick: every workload against lesson 08 and the plain Deno echo", async () => {
  const args = [
    "--quick",
    "--only",
    "lesson08,deno-plain",
    "--workloads",
    "pp1,pp100,stream,idle,pp1000",
  ];
  const result = await runTask(TASK, args, { timeoutMs: 60_000 });
  assertEquals(result.code, 0, `stderr:\n${result.stderr}\nstdout:\n${result.stdout}`);
  const out = result.stdout;
  assertStringIncludes(out, `deno task bench-echo ${args.join(" ")}\n`); // the exact command

  const main = tableRows(out, "server");
  assertEquals(main.map((row) => row[0]), ["lesson 08", "plain `Deno.listen` echo"]);
  for (const row of main) {
    assertEquals(row.length, 10, row.join(" | ")); // server + 9 numbers
    for (const cell of row.slice(1)) assert(parseCell(cell)[0] > 0, `${row[0]}: ${cell}`);
  }
  // Lesson 08 is the reference: each of its ratios is 1.00×.
  for (const cell of main[0].slice(1)) {
    const [, ratio] = parseCell(cell);
    if (ratio !== undefined) assertEquals(ratio, 1);
  }
  // Round trips, MB/s, KiB per idle connection: the ratio is this row ÷ lesson 08's.
  for (const column of [1, 2, 3, 4, 5]) {
    const [value, ratio] = parseCell(main[1][column]);
    const [reference] = parseCell(main[0][column]);
    const expected = value / reference;
    assert(Math.abs(ratio! - expected) <= 0.01 + expected * 0.01, `${ratio} vs ${expected}`);
  }

  // The CPU table: one row per server and traffic workload, with a verdict.
  const cpu = out.split("who was saturated.")[1];
  assert(cpu, out);
  const cpuRows = tableRows(cpu, "server");
  assertEquals(cpuRows.length, 2 * 4);
  for (const [server, workload, serverCpu, loadCpu, machine, verdict] of cpuRows) {
    assertMatch(server, /^(lesson 08|plain `Deno\.listen` echo)$/);
    assertMatch(
      workload,
      /^(1 conn ping-pong|100 conns ping-pong|4 conns streaming|200 conns ping-pong)$/,
    );
    assertMatch(serverCpu, /^[1-9]\d*%$/); // it did work
    // 1 load process for 1 connection, 2 otherwise.
    assertMatch(loadCpu, workload.startsWith("1 conn") ? /^\d+%$/ : /^\d+% \+ \d+%$/);
    assertMatch(machine, /^\d+% of \d+%$/);
    assertMatch(verdict, /^(server-bound|load-bound|machine full|neither \(latency-bound\))$/);
  }
  // Fairness: round trips per connection, fewest ≤ median ≤ most, and the longest wait.
  const fairness = tableRows(out.split("Fairness with 200 busy connections")[1] ?? "", "server");
  assertEquals(fairness.map((row) => row[0]), ["lesson 08", "plain `Deno.listen` echo"]);
  for (const [, counts, longest] of fairness) {
    const [fewest, middle, most] = counts.split(" / ").map((n) => parseCell(n)[0]);
    assert(fewest <= middle && middle <= most && most > 0, counts);
    assert(parseCell(longest)[0] > 0, longest);
  }
  // One progress line per run on stderr, and every process was stopped before the tables.
  assertEquals(result.stderr.match(/^run 1\/1 · /gm)?.length, 2 * 5, result.stderr);
  assert(!out.includes("Notes:"), out);
});

Deno.test("bench-echo: a bad option is one line on stderr and exit code 2", async () => {
  const cases: [string[], string][] = [
    [
      ["--workloads", "pp1,nope"],
      '--workloads: unknown name "nope" (choose from pp1, pp100, ' +
      "stream, idle, pp1000, work)\n",
    ],
    [["--reps", "0"], "--reps must be a positive whole number\n"],
    [["--colour"], "unknown option --colour (see --help)\n"],
  ];
  for (const [args, stderr] of cases) {
    const result = await runTask(TASK, args);
    assertEquals([result.code, result.stderr], [2, stderr], args.join(" "));
  }
  const help = await runTask(TASK, ["--help"]);
  assertEquals(help.code, 0);
  assertStringIncludes(help.stdout, "Usage: deno task bench-echo");
});
