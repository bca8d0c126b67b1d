/**
 * Every program's `--help`, as a snapshot (`@std/testing/snapshot`).
 *
 * conventions_test.ts checks the rules every `--help` keeps (usage line,
 * default port, exit 0). This file keeps the whole text: a flag renamed, a
 * default changed or a description lost shows up as a diff against
 * `__snapshots__/help_test.ts.snap` in review, and the README tables of
 * flags can be compared with it. After a deliberate change, update the
 * snapshots and read the diff:
 *
 *   deno test -P --no-prompt --allow-write=tests/__snapshots__ tests/help_test.ts -- --update
 *
 * @module
 */
import { assertEquals } from "@std/assert";
import { assertSnapshot } from "@std/testing/snapshot";
import { runTask } from "./_helpers.ts";

/** Lesson 17 shows its default socket path, under $XDG_RUNTIME_DIR: the same one on every machine. */
const UNIX_ENV = { XDG_RUNTIME_DIR: "/run/user/1000" };

const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
/** Tasks that run one program of the course (not `deno test`, `deno fmt`, `deno bench`). */
const programs = Object.entries(config.tasks as Record<string, { command: string }>)
  .filter(([, { command }]) => command.startsWith("deno run "))
  .map(([task]) => task)
  .sort();

Deno.test("every program's --help, as a snapshot", async (t) => {
  // Two at a time: each is a Deno process starting up.
  const results = new Map<string, { code: number; stdout: string; stderr: string }>();
  for (let i = 0; i < programs.length; i += 2) {
    await Promise.all(
      programs.slice(i, i + 2).map(async (task) => {
        results.set(task, await runTask(task, ["--help"], { env: UNIX_ENV, timeoutMs: 60_000 }));
      }),
    );
  }
  for (const task of programs) {
    await t.step(task, async (t) => {
      const { code, stdout, stderr } = results.get(task)!;
      assertEquals([code, stderr], [0, ""], `${task} --help`);
      await assertSnapshot(t, stdout);
    });
  }
});
