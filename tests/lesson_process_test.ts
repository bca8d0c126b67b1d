import { assertEquals } from "@std/assert";
import { withoutDownloadNotices } from "../tools/lesson_process.ts";

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
