/**
 * Lesson 21: a symbolic link in the served folder that points outside it is
 * refused (Deno.realPath, then a prefix check), even when the server may read
 * the link's target. The links are in tests/fixtures/lesson21-links (a
 * separate file from lesson21_test.ts, because the exercise runner's scratch
 * copy leaves symbolic links out).
 */
import { assert, assertEquals } from "@std/assert";
import { ChildProgram } from "../lessons/20-redis-chat/cluster.ts";
import { writeAll } from "../lib/io.ts";
import { closeRaw, decode, encode, rawConnect, readToEnd } from "./_helpers.ts";

/** Sends `request` on a new connection and reads until the server closes it. */
async function exchange(port: number, request: string): Promise<string> {
  const conn = await rawConnect(port);
  try {
    await writeAll(conn, encode(request));
    return decode(await readToEnd(conn, 5_000));
  } finally {
    closeRaw(conn);
  }
}

/** A text answer of the lesson's server, closing the connection. */
const answer = (status: string, body: string) =>
  `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
  `content-length: ${encode(body).length}\r\nconnection: close\r\n\r\n${body}`;

Deno.test("lesson 21: a symbolic link inside the folder that points outside is refused", async () => {
  // A folder in the repository with links: escape.txt -> ../../../deno.json,
  // escape-dir -> ../../../lessons/21-http, alias.txt -> inside.txt. The
  // server may even read deno.json: the realPath check is what stops it.
  const root = "tests/fixtures/lesson21-links";
  const server = new ChildProgram("deno", [
    "run",
    "--no-prompt",
    "--allow-net=127.0.0.1",
    `--allow-read=${root},deno.json`,
    "lessons/21-http/server.ts",
    "--port",
    "0",
    "--root",
    root,
  ]);
  try {
    const line = await server.waitForLine(/^listening on 127\.0\.0\.1:\d+$/, 20_000);
    assert(line, server.lines.join("\n"));
    const port = Number(line!.split(":").at(-1));
    const get = (path: string) =>
      exchange(port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assertEquals(
      await get("/escape.txt"),
      answer("403 Forbidden", "that path is not in the site\n"),
    );
    assertEquals(
      await get("/escape-dir/server.ts"),
      answer("403 Forbidden", "that path is not in the site\n"),
    );
    // A link that stays inside is served.
    assertEquals(
      await get("/alias.txt"),
      answer("200 OK", "inside\n"),
    );
  } finally {
    await server.stop("SIGKILL");
  }
});
