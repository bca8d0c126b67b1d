import { assert, assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { encodeHex } from "@std/encoding/hex";
import { writeAll } from "../lib/io.ts";
import {
  closeRaw,
  decode,
  encode,
  LessonServer,
  rawConnect,
  readToEnd,
  runTask,
} from "./_helpers.ts";

/** A frame built by hand: 4-byte big-endian length, then the payload. */
function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, false);
  out.set(payload, 4);
  return out;
}

/** Splits the answer frames out of a byte string, by hand. */
function answers(bytes: Uint8Array): string[] {
  const out: string[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 0; offset < bytes.length;) {
    const length = view.getUint32(offset, false);
    out.push(decode(bytes.subarray(offset + 4, offset + 4 + length)));
    offset += 4 + length;
  }
  return out;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  return encodeHex(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
  );
}

test("lesson 06: length-prefixed frames", async (t) => {
  await using server = await LessonServer.start("lesson06-server");
  const port = String(server.port);

  await t.step("the client sends texts and random sizes and checks every answer", async () => {
    const client = await runTask("lesson06-client", [
      "--port",
      port,
      "--message",
      "Hello",
      "--message",
      "🌮",
      "--sizes",
      "0,1,1000,1000000",
    ]);
    assertEquals(client.code, 0, client.stderr);
    assertEquals(
      client.stdout,
      [
        'frame 1: "Hello", 5 bytes, sha256 matches',
        'frame 2: "🌮", 4 bytes, sha256 matches',
        "frame 3: random, 0 bytes, sha256 matches",
        "frame 4: random, 1 byte, sha256 matches",
        "frame 5: random, 1000 bytes, sha256 matches",
        "frame 6: random, 1000000 bytes, sha256 matches",
        "",
      ].join("\n"),
    );
  });

  await t.step("raw frames: each answer names the index, length and SHA-256", async () => {
    const payloads = [
      encode("Hello"),
      new Uint8Array(0),
      Uint8Array.from({ length: 300 }, (_, i) => i % 256),
    ];
    const expected = await Promise.all(
      payloads.map(async (p, i) =>
        `frame ${i + 1}: ${p.length} byte${p.length === 1 ? "" : "s"}, sha256 ${await sha256(p)}`
      ),
    );
    const wire = new Uint8Array(payloads.reduce((n, p) => n + 4 + p.length, 0));
    let offset = 0;
    for (const p of payloads) {
      wire.set(frame(p), offset);
      offset += 4 + p.length;
    }
    assertEquals(
      expected[0],
      "frame 1: 5 bytes, sha256 185f8db32271fe25f561a6fc938b2e264306ec304eda518007d1764826381969",
    );
    // The same exchange, split in two writes at every byte boundary.
    for (let split = 0; split <= wire.length; split += split < 16 ? 1 : 37) {
      const conn = await rawConnect(server.port);
      try {
        await writeAll(conn, wire.subarray(0, split));
        await writeAll(conn, wire.subarray(split));
        await conn.closeWrite();
        assertEquals(answers(await readToEnd(conn)), expected, `split at ${split}`);
      } finally {
        closeRaw(conn);
      }
    }
  });

  await t.step(
    "a frame over the limit: error, and the connection closes before the body",
    async () => {
      const conn = await rawConnect(server.port);
      try {
        // Only the header: 2,000,000 announced, no body sent and no half-close.
        const header = new Uint8Array(4);
        new DataView(header.buffer).setUint32(0, 2_000_000, false);
        await writeAll(conn, header);
        assertEquals(answers(await readToEnd(conn, 5_000)), [
          "error: frame of 2000000 bytes is larger than the limit of 1048576 bytes",
        ]);
      } finally {
        closeRaw(conn);
      }
    },
  );

  await t.step("the client reports the server's refusal and exits 1", async () => {
    const client = await runTask("lesson06-client", ["--port", port, "--sizes", "1,2000000"]);
    assertEquals(client.code, 1);
    assertEquals(client.stdout, "frame 1: random, 1 byte, sha256 matches\n");
    assertEquals(
      client.stderr,
      "the server said: frame of 2000000 bytes is larger than the limit of 1048576 bytes\n",
    );
  });

  await t.step("a stream that ends mid-frame gets an error", async () => {
    const conn = await rawConnect(server.port);
    try {
      await writeAll(conn, frame(encode("Hello")).subarray(0, 7));
      await conn.closeWrite();
      const [answer] = answers(await readToEnd(conn));
      assert(answer.startsWith("error: "), answer);
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("bad --sizes is a usage error", async () => {
    const client = await runTask("lesson06-client", ["--port", port, "--sizes", "1,x"]);
    assertEquals([client.code, client.stderr], [
      2,
      '--sizes takes whole numbers from 0 to 67108864, got "x"\n',
    ]);
  });
});
