/**
 * Lesson 07 is tested through an independent client written from the README's
 * description alone: its own header code and node:zlib's CRC-32, not lib/.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { test } from "./_checks.ts";
import { crc32 } from "node:zlib";
import { writeAll } from "../lib/io.ts";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  rawConnect,
  readExactly,
  readToEnd,
  runTask,
} from "./_helpers.ts";

const MAGIC = 0x12345678;

/** Builds a message by hand; `crc`/`magic`/`length` can be forced wrong. */
function message(
  type: number,
  body: string,
  wrong: { magic?: number; crc?: number; length?: number } = {},
): Uint8Array {
  const bytes = encode(body);
  const out = new Uint8Array(16 + bytes.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, wrong.magic ?? MAGIC, false);
  view.setUint32(4, type, false);
  view.setUint32(8, wrong.length ?? bytes.length, false);
  view.setUint32(12, wrong.crc ?? crc32(bytes), false);
  out.set(bytes, 16);
  return out;
}

/** Reads one message by hand and checks its header. */
async function readMessage(
  conn: Deno.Conn,
): Promise<{ type: number; body: Record<string, unknown> }> {
  const header = await readExactly(conn, 16);
  const view = new DataView(header.buffer);
  assertEquals(view.getUint32(0, false), MAGIC, "magic");
  const body = await readExactly(conn, view.getUint32(8, false));
  assertEquals(view.getUint32(12, false), crc32(body), "crc");
  return { type: view.getUint32(4, false), body: JSON.parse(decode(body)) };
}

const request = (body: unknown) => message(1, JSON.stringify(body));

test("lesson 07: the key-value protocol", async (t) => {
  await using server = await LessonServer.start("lesson07-server");
  const port = String(server.port);
  const client = (...args: string[]) => runTask("lesson07-client", ["--port", port, ...args]);

  await t.step("set, get, keys, delete, get a missing key (the spawned pair)", async () => {
    assertEquals((await client("set", "color", "deep", "blue")).stdout, '{"ok":true}\n');
    assertEquals((await client("get", "color")).stdout, '{"ok":true,"value":"deep blue"}\n');
    assertEquals((await client("keys")).stdout, '{"ok":true,"keys":["color"]}\n');
    assertEquals((await client("delete", "color")).stdout, '{"ok":true,"deleted":true}\n');
    const missing = await client("get", "color");
    assertEquals([missing.code, missing.stdout, missing.stderr], [
      1,
      "",
      'error not-found: no value for key "color"\n',
    ]);
  });

  await t.step("bad commands are usage errors", async () => {
    for (const args of [["frob"], ["get"], ["keys", "extra"], []]) {
      const result = await client(...args);
      assertEquals([result.code, result.stderr], [
        2,
        "usage: set KEY VALUE | get KEY | delete KEY | keys (see --help)\n",
      ]);
    }
  });

  await t.step("--trace labels the header fields and dumps the bytes", async () => {
    const result = await client("--trace", "get", "nothing-here");
    assertEquals(result.code, 1);
    assertStringIncludes(
      result.stdout,
      "sent request, 49 bytes:\nmagic   12 34 56 78  0x12345678 (ok)\n",
    );
    assertStringIncludes(
      result.stdout,
      "type    00 00 00 01  1 (request)\nlength  00 00 00 21  33 bytes\n",
    );
    assertStringIncludes(
      result.stdout,
      "00000000  12 34 56 78 00 00 00 01  00 00 00 21 21 e8 45 d5",
    );
    assertStringIncludes(result.stdout, "received error, ");
    assertStringIncludes(result.stdout, "type    00 00 00 03  3 (error)\n");
  });

  await t.step("an independent client: several requests on one connection", async () => {
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, request({ op: "set", key: "n", value: [1, { a: null }] }));
      assertEquals(await readMessage(conn), { type: 2, body: { ok: true } });
      await writeAll(conn, request({ op: "get", key: "n" }));
      assertEquals(await readMessage(conn), {
        type: 2,
        body: { ok: true, value: [1, { a: null }] },
      });
    } finally {
      closeRaw(conn);
    }
  });

  await t.step(
    "recoverable errors answer with type 3 and the connection stays usable",
    async () => {
      const conn = await rawConnect(server.port);
      try {
        const cases: [Uint8Array, string][] = [
          [message(1, '{"op":"keys"}', { crc: 1 }), "bad-checksum"],
          [message(1, "{not json"), "bad-json"],
          [request({ op: "frob" }), "unknown-op"],
          [request({ op: "get" }), "bad-request"],
          [request({ op: "set", key: "k" }), "bad-request"],
          [message(2, '{"op":"keys"}'), "bad-type"],
        ];
        for (const [bytes, code] of cases) {
          await writeAll(conn, bytes);
          const answer = await readMessage(conn);
          assertEquals([answer.type, answer.body.ok, answer.body.error], [3, false, code]);
          assertEquals(typeof answer.body.message, "string");
          // still usable:
          await writeAll(conn, request({ op: "delete", key: "never-set" }));
          assertEquals(await readMessage(conn), { type: 2, body: { ok: true, deleted: false } });
        }
      } finally {
        closeRaw(conn);
      }
    },
  );

  for (
    const [name, bytes, code] of [
      ["bad magic", message(1, '{"op":"keys"}', { magic: 0xdeadbeef }), "bad-magic"],
      [
        "a length over the maximum (no body sent)",
        message(1, "", { length: 0x7fffffff }),
        "too-large",
      ],
    ] as const
  ) {
    await t.step(`${name}: an error, then the connection closes`, async () => {
      const conn = await rawConnect(server.port);
      try {
        await writeAll(conn, bytes);
        const answer = await readMessage(conn);
        assertEquals([answer.type, answer.body.error], [3, code]);
        assertEquals(await readToEnd(conn, 5_000), new Uint8Array(), "then EOF");
      } finally {
        closeRaw(conn);
      }
    });
  }

  await t.step("a message cut off at EOF gets a truncated error", async () => {
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, request({ op: "keys" }).subarray(0, 20));
      await conn.closeWrite();
      const answer = await readMessage(conn);
      assertEquals([answer.type, answer.body.error], [3, "truncated"]);
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("a valid exchange split at every byte still gets the right answers", async () => {
    const wire = new Uint8Array([
      ...request({ op: "set", key: "split", value: "ok" }),
      ...request({ op: "get", key: "split" }),
    ]);
    for (let split = 1; split < wire.length; split++) {
      const conn = await rawConnect(server.port);
      try {
        await writeAll(conn, wire.subarray(0, split));
        await writeAll(conn, wire.subarray(split));
        assertEquals(await readMessage(conn), { type: 2, body: { ok: true } }, `split ${split}`);
        assertEquals(
          await readMessage(conn),
          { type: 2, body: { ok: true, value: "ok" } },
          `split ${split}`,
        );
      } finally {
        closeRaw(conn);
      }
    }
  });

  await t.step("the server logged every exchange and is still serving", async () => {
    assert(
      server.lines.some((line) =>
        line.endsWith(': {"op":"get","key":"split"} -> {"ok":true,"value":"ok"}')
      ),
    );
    assertEquals((await client("keys")).stdout, '{"ok":true,"keys":["n","split"]}\n');
  });
});
