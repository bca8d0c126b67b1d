import { assertEquals } from "@std/assert";
import { taskArgs, withoutDownloadNotices } from "../tools/lesson_process.ts";

Deno.test("Deno's download notices are not part of a program's output", () => {
  // What a first run on an empty cache printed on stderr (it made the tour fail once).
  const stderr = "Download https://registry.npmjs.org/deno-std\n" +
    "could not connect to 127.0.0.1:1: connection refused\n" +
    "Download https://registry.npmjs.org/deno-std/-/deno-std-1.4.0.tgz\n";
  assertEquals(
    withoutDownloadNotices(stderr),
    "could not connect to 127.0.0.1:1: connection refused\n",
  );
  // A program's own line that merely starts with the word stays.
  assertEquals(withoutDownloadNotices("Download finished\n"), "Download finished\n");
});

Deno.test("taskArgs fills in $VARS as deno task does (lesson 17's private directory)", () => {
  const env = { XDG_RUNTIME_DIR: "/run/user/7", HOME: "/home/seven" };
  const args = taskArgs("lesson17-server", env);
  assertEquals(
    args.find((arg) => arg.startsWith("--allow-net=")),
    "--allow-net=unix:/run/user/7/deno-socket-lessons/lesson17.sock," +
      "unix:/home/seven/.deno-socket-lessons/lesson17.sock",
  );
  // An empty variable is empty, as in a shell: the grant names a path under /, never used.
  const unset = taskArgs("lesson17-server", { ...env, XDG_RUNTIME_DIR: "" });
  assertEquals(
    unset.find((arg) => arg.startsWith("--allow-read=")),
    "--allow-read=/deno-socket-lessons,/home/seven/.deno-socket-lessons",
  );
  assertEquals(taskArgs("lesson02-server").includes("lessons/02-echo/server.ts"), true);
});
