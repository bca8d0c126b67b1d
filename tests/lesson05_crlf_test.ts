/**
 * Lesson 05: lines that end in CR LF, from a raw socket (the lesson's client
 * strips the CR before sending, so only a raw socket shows whether the
 * server strips it too): "a\r" is not "a", and "/bye\r" must still end the
 * conversation.
 */
import { assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { writeAll } from "../lib/io.ts";
import { closeRaw, decode, encode, LessonServer, rawConnect, readToEnd } from "./_helpers.ts";

test("lesson 05: CR LF from a raw socket: the CR is not part of the line", async () => {
  await using server = await LessonServer.start("lesson05-server");
  const conn = await rawConnect(server.port);
  try {
    await writeAll(conn, encode("abc\r\n/bye\r\nnot answered\r\n"));
    await conn.closeWrite();
    assertEquals(decode(await readToEnd(conn)), "1: cba\nbye\n");
  } finally {
    closeRaw(conn);
  }
});
