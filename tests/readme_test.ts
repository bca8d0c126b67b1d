/**
 * The expected output in every lesson README is real: each `console checked`
 * block is run (tools/transcripts.ts) and must match, ports and timings aside.
 */
import { assert, assertEquals } from "@std/assert";
import { normalise, parseCheckedBlocks, runCheckedBlocks } from "../tools/transcripts.ts";

const lessonsDir = new URL("../lessons/", import.meta.url);
const lessons = [...Deno.readDirSync(lessonsDir)]
  .filter((entry) => entry.isDirectory && /^\d\d-/.test(entry.name))
  .map((entry) => entry.name)
  .sort();

/**
 * Lesson 17's socket lives in $XDG_RUNTIME_DIR: the README runs get one of
 * their own (made afresh), so a learner's running lesson 17 server is never in the way.
 */
const RUNTIME_DIR = `${Deno.cwd()}/tests/artifacts/readme-17`; // git-ignored
await Deno.remove(RUNTIME_DIR, { recursive: true }).catch(() => {});
await Deno.mkdir(RUNTIME_DIR, { recursive: true, mode: 0o700 });

Deno.test("normalise hides ports and timings only", () => {
  assertEquals(
    normalise("connection from 127.0.0.1:51234 to [::1]:65402"),
    "connection from 127.0.0.1:PORT to [::1]:PORT",
  );
  assertEquals(normalise("waited 12.5 ms"), "waited N ms");
  assertEquals(normalise('Received "Hello, world"'), 'Received "Hello, world"');
  // ... and lesson 17's private socket directory, which differs between machines.
  assertEquals(
    normalise("listening on unix:/run/user/1000/deno-socket-lessons/lesson17.sock"),
    normalise("listening on unix:/home/me/.deno-socket-lessons/lesson17.sock"),
  );
  assertEquals(normalise("--path /tmp/mine.sock"), "--path /tmp/mine.sock");
});

Deno.test("parseCheckedBlocks reads commands, stdin, args and ^C", () => {
  const blocks = parseCheckedBlocks([
    "```console checked",
    "$ deno task lesson08-server --port 65408 --idle-timeout 5",
    "listening on 127.0.0.1:65408",
    "^C",
    "```",
    "```console checked",
    '$ echo "straße" | deno task lesson03-client --message "a b"',
    "Sent",
    "```",
  ].join("\n"));
  assertEquals(blocks.length, 2);
  assertEquals([blocks[0].task, blocks[0].args, blocks[0].interrupt], ["lesson08-server", [
    "--idle-timeout",
    "5",
  ], true]);
  assertEquals(blocks[0].expected, ["listening on 127.0.0.1:65408"]);
  assertEquals([blocks[1].stdin, blocks[1].args], ["straße\n", ["--message", "a b"]]);
});

for (const lesson of lessons) {
  Deno.test(`README of ${lesson} shows real output`, async () => {
    const readme = await Deno.readTextFile(new URL(`${lesson}/README.md`, lessonsDir));
    const runs = await runCheckedBlocks(readme, { env: { XDG_RUNTIME_DIR: RUNTIME_DIR } });
    assert(runs.length >= 2, "a lesson README shows at least a server and a client run");
    for (const run of runs) {
      assertEquals(
        run.actual.map(normalise),
        run.block.expected.map(normalise),
        `README line ${run.block.line}: ${run.block.command}`,
      );
    }
  });
}

Deno.test("the quick start's tour line counts every lesson", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const n = lessons.length; // the tour prints `${lessons.length} lessons, ${ok} ok` (tools/tour.ts)
  assert(
    readme.includes(`\`${n} lessons, ${n} ok\``),
    `README.md's quick start should show the tour's last line, \`${n} lessons, ${n} ok\``,
  );
});
