import { assertEquals, assertMatch } from "@std/assert";
import { test } from "./_checks.ts";
import { LessonServer, runTask } from "./_helpers.ts";

test("lesson 01: first connection", async (t) => {
  await t.step(
    "the client and server see the same two ends; the server exits after one",
    async () => {
      await using server = await LessonServer.start("lesson01-server");
      const client = await runTask("lesson01-client", ["--port", String(server.port)]);
      assertEquals(client.code, 0);
      assertEquals(client.stderr, "");
      const match = client.stdout.match(
        /^connected to 127\.0\.0\.1:(\d+) from 127\.0\.0\.1:(\d+)\n$/,
      );
      assertMatch(client.stdout, /^connected to /);
      assertEquals(Number(match![1]), server.port);
      const ephemeral = match![2];

      assertEquals(await server.waitForExit(10_000), true, "the server exits by itself");
      const result = await server.stop();
      assertEquals(result.code, 0);
      assertEquals(
        result.stdout,
        `listening on 127.0.0.1:${server.port}\nconnection from 127.0.0.1:${ephemeral}\n`,
      );
      assertEquals(result.stderr, "");
    },
  );
});
