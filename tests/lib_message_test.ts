import { assert, assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
import { concat } from "@std/bytes";
import fc from "fast-check";
import { crc32 } from "../lib/crc32.ts";
import { LessonError } from "../lib/errors.ts";
import {
  DEFAULT_MAX_BODY_BYTES,
  describeHeader,
  encodeMessage,
  HEADER_BYTES,
  MAGIC,
  type Message,
  MessageDecoder,
  MessageType,
  messageTypeName,
  ProtocolError,
} from "../lib/message.ts";
import { utf8Encode } from "../lib/text.ts";
import { chunkings, cut } from "./_helpers.ts";

type Item = Message | ProtocolError;

/**
 * Decodes `pieces` as readChunks delivers them: through one reused buffer
 * that is overwritten after each push. Stops after a fatal error, adds what
 * `end()` returns, and checks `bufferedBytes` after every push.
 */
function decode(pieces: Uint8Array[], maxBodyBytes = DEFAULT_MAX_BODY_BYTES): Item[] {
  const decoder = new MessageDecoder(maxBodyBytes);
  const buffer = new Uint8Array(Math.max(0, ...pieces.map((p) => p.length)));
  const items: Item[] = [];
  for (const piece of pieces) {
    buffer.set(piece);
    items.push(...decoder.push(buffer.subarray(0, piece.length)));
    buffer.fill(0xee);
    const buffered = decoder.bufferedBytes;
    assert(buffered < HEADER_BYTES + maxBodyBytes, `${buffered} bytes buffered`);
    const last = items[items.length - 1];
    if (last instanceof ProtocolError && last.fatal) return items;
  }
  const last = decoder.end();
  if (last) items.push(last);
  return items;
}

/** Items as plain values, so assertEquals compares errors by code and bytes. */
function plain(items: Item[]) {
  return items.map((item) =>
    item instanceof ProtocolError
      ? { code: item.code, fatal: item.fatal, bytes: item.bytes }
      : { ...item }
  );
}

/** A message with chosen header fields (the defaults make it valid). */
function rawMessage(
  body: Uint8Array,
  fields: { magic?: number; type?: number; length?: number; crc?: number } = {},
): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, fields.magic ?? MAGIC);
  view.setUint32(4, fields.type ?? MessageType.Request);
  view.setUint32(8, fields.length ?? body.length);
  view.setUint32(12, fields.crc ?? crc32(body));
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

const SAMPLES: [string, number, unknown][] = [
  ["request", MessageType.Request, { op: "set", key: "taco", value: "🌮" }],
  ["response", MessageType.Response, { ok: true, value: [1, 2.5, null, "x"] }],
  ["error", MessageType.Error, { error: "unknown op" }],
  ["null body", MessageType.Response, null],
  ["string body", MessageType.Request, "straße"],
  ["a real U+FFFD in the body", MessageType.Request, { text: "\uFFFD" }],
  ["unknown type", 99, { op: "future" }],
];

Deno.test("encodeMessage", async (t) => {
  await t.step("the header: magic, type, length, CRC, all big-endian", () => {
    const bytes = encodeMessage(MessageType.Response, { ok: true });
    const body = utf8Encode('{"ok":true}');
    const crc = crc32(body);
    assertEquals(
      bytes,
      new Uint8Array([
        ...[0x12, 0x34, 0x56, 0x78],
        ...[0, 0, 0, 2],
        ...[0, 0, 0, body.length],
        ...[crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff],
        ...body,
      ]),
    );
  });
  await t.step("values JSON cannot encode are a TypeError", () => {
    assertThrows(() => encodeMessage(1, undefined), TypeError);
    assertThrows(() => encodeMessage(1, () => 1), TypeError);
    assertThrows(() => encodeMessage(1, 1n), TypeError);
  });
  await t.step("types outside 0 to 2^32 - 1 are a RangeError", () => {
    for (const type of [-1, 1.5, 2 ** 32, NaN]) {
      assertThrows(() => encodeMessage(type, {}), RangeError);
    }
    assertEquals(
      encodeMessage(2 ** 32 - 1, {}).subarray(4, 8),
      new Uint8Array([255, 255, 255, 255]),
    );
  });
});

Deno.test("MessageDecoder gives the same messages however the bytes are cut", async (t) => {
  for (const [name, type, value] of SAMPLES) {
    await t.step(name, () => {
      const bytes = encodeMessage(type, value);
      for (const [how, pieces] of chunkings(bytes)) {
        assertEquals(plain(decode(pieces)), [{ type, body: value, bytes }], how);
      }
    });
  }
  const wire = concat(SAMPLES.map(([, type, value]) => encodeMessage(type, value))) as Uint8Array;
  const expected = decode([wire]);
  await t.step("every sample merged into one chunk", () => {
    assertEquals(expected.map((m) => (m as Message).body), SAMPLES.map(([, , value]) => value));
  });
  await t.step("merged, then split at every byte", () => {
    for (const [how, pieces] of chunkings(wire)) {
      assertEquals(plain(decode(pieces)), plain(expected), how);
    }
  });
  await t.step("a 200 KB message in 1000-byte chunks", () => {
    const value = { text: "x".repeat(200_000) };
    const bytes = encodeMessage(MessageType.Request, value);
    const pieces = Array.from(
      { length: Math.ceil(bytes.length / 1000) },
      (_, i) => bytes.subarray(i * 1000, i * 1000 + 1000),
    );
    assertEquals(plain(decode(pieces)), [{ type: 1, body: value, bytes }]);
  });
  await t.step("messages never share memory with the chunk pushed", () => {
    const chunk = concat([encodeMessage(1, "a"), encodeMessage(2, "b")]) as Uint8Array;
    const copy = chunk.slice();
    const items = new MessageDecoder().push(chunk) as Message[];
    chunk.fill(0);
    assertEquals(items.map((m) => m.body), ["a", "b"]);
    assertEquals(concat(items.map((m) => m.bytes)), copy);
  });
});

Deno.test("MessageDecoder errors", async (t) => {
  const good = encodeMessage(MessageType.Request, { n: 1 });
  const next = encodeMessage(MessageType.Request, { n: 2 });

  await t.step("a bad checksum skips that message only", () => {
    const bad = encodeMessage(MessageType.Request, { n: 9 });
    bad[bad.length - 2] ^= 0x01; // {"n":9} becomes {"n":8}
    for (const [how, pieces] of chunkings(concat([good, bad, next]) as Uint8Array)) {
      const items = decode(pieces);
      assertEquals(items.length, 3, how);
      assertEquals((items[0] as Message).body, { n: 1 });
      const error = items[1] as ProtocolError;
      assertInstanceOf(error, ProtocolError);
      assertEquals([error.code, error.fatal], ["bad-checksum", false]);
      assertEquals(error.bytes, bad);
      assertEquals((items[2] as Message).body, { n: 2 });
    }
  });
  await t.step("a body that is not JSON, or not UTF-8, or empty: bad-json, not fatal", () => {
    for (const body of [utf8Encode("{"), new Uint8Array([0x22, 0xff, 0x22]), new Uint8Array(0)]) {
      const items = decode([concat([rawMessage(body), next]) as Uint8Array]);
      assertEquals(plain(items), [
        { code: "bad-json", fatal: false, bytes: rawMessage(body) },
        { type: 1, body: { n: 2 }, bytes: next },
      ]);
    }
  });
  await t.step("bad magic is fatal, comes after the messages before it, and sticks", () => {
    const http = utf8Encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const decoder = new MessageDecoder();
    const items = decoder.push(concat([good, http, next]) as Uint8Array);
    assertEquals(items.length, 2);
    assertEquals((items[0] as Message).body, { n: 1 });
    const error = items[1] as ProtocolError;
    assertEquals([error.code, error.fatal], ["bad-magic", true]);
    assertEquals(
      error.message,
      "bad magic number 0x47455420 (expected 0x12345678): not our protocol",
    );
    assertEquals(error.bytes, http.subarray(0, HEADER_BYTES));
    assertEquals(assertThrows(() => decoder.push(next)), error);
    assertEquals(decoder.end(), undefined);
  });
  await t.step("a too-large length is fatal from the 16 header bytes alone", () => {
    const decoder = new MessageDecoder(100);
    const header = rawMessage(new Uint8Array(0), { length: 101 });
    const [error] = decoder.push(header) as ProtocolError[];
    assertEquals([error.code, error.fatal], ["too-large", true]);
    assertEquals(error.message, "message body of 101 bytes is larger than the limit of 100 bytes");
    const huge = rawMessage(new Uint8Array(0), { length: 0xffff_ffff });
    assertEquals((new MessageDecoder().push(huge)[0] as ProtocolError).code, "too-large");
  });
  await t.step("a body of exactly the limit is accepted", () => {
    const bytes = encodeMessage(1, "x".repeat(98)); // 100 bytes with the quotes
    assertEquals((decode([bytes], 100)[0] as Message).body, "x".repeat(98));
  });
  await t.step("end() mid-header and mid-body: truncated", () => {
    for (const keep of [1, HEADER_BYTES - 1, HEADER_BYTES, good.length - 1]) {
      const decoder = new MessageDecoder();
      decoder.push(good.subarray(0, keep));
      assertEquals(decoder.bufferedBytes, keep);
      const error = decoder.end() as ProtocolError;
      assertInstanceOf(error, ProtocolError);
      assertEquals([error.code, error.fatal, error.bytes], [
        "truncated",
        true,
        good.subarray(0, keep),
      ]);
    }
  });
  await t.step("ProtocolError is a LessonError, so runMain prints it as one line", () => {
    assertInstanceOf(new ProtocolError("bad-json", "x", new Uint8Array(0)), LessonError);
  });
});

Deno.test("describeHeader and messageTypeName", async (t) => {
  await t.step("labels the four fields", () => {
    assertEquals(
      describeHeader(encodeMessage(MessageType.Request, { op: "echo" })),
      [
        "magic   12 34 56 78  0x12345678 (ok)",
        "type    00 00 00 01  1 (request)",
        "length  00 00 00 0d  13 bytes",
        "crc     c1 ba 61 a5  0xc1ba61a5",
      ].join("\n"),
    );
  });
  await t.step("a bad magic number and a partial header", () => {
    assertEquals(
      describeHeader(utf8Encode("GET / HTTP/1.1")),
      [
        "magic   47 45 54 20  0x47455420 (expected 0x12345678)",
        "type    2f 20 48 54  790644820 (unknown)",
        "length  54 50 2f 31  1414541105 bytes",
      ].join("\n"),
    );
    assertEquals(describeHeader(new Uint8Array(3)), "");
  });
  await t.step("names", () => {
    assertEquals([1, 2, 3, 0, 4].map(messageTypeName), [
      "request",
      "response",
      "error",
      "unknown",
      "unknown",
    ]);
  });
});

Deno.test("MessageDecoder properties", async (t) => {
  const cuts = fc.array(fc.nat(), { maxLength: 12 });
  const message = fc.tuple(fc.nat({ max: 5 }), fc.jsonValue({ maxDepth: 3 }));

  await t.step("messages round-trip whatever the chunking", () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 8 }), cuts, (messages, cuts) => {
        const wire = concat(
          messages.map(([type, value]) => encodeMessage(type, value)),
        ) as Uint8Array;
        const items = decode(cut(wire, cuts));
        assertEquals(
          items.map((m) => [(m as Message).type, (m as Message).body]),
          messages.map(([type, value]) => [type, JSON.parse(JSON.stringify(value))]),
        );
      }),
      { numRuns: 200 },
    );
  });

  // Messages (some with bodies that are not JSON) with a few bytes changed,
  // or cut short: every kind of error shows up.
  const max = 200;
  const part = fc.oneof(
    message.map(([type, value]) => encodeMessage(type, value)),
    fc.uint8Array({ maxLength: 20 }).map((body) => rawMessage(body)),
  );
  const damaged = fc.record({
    parts: fc.array(part, { maxLength: 5 }),
    changes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
    keep: fc.nat(),
  }).map(({ parts, changes, keep }) => {
    const wire = concat(parts) as Uint8Array;
    for (const [at, xor] of changes) if (wire.length > 0) wire[at % wire.length] ^= xor;
    return wire.subarray(0, wire.length - (keep % 3 === 0 ? keep % (wire.length + 1) : 0));
  });

  await t.step(
    "damaged bytes give messages and typed errors in order, whatever the chunking",
    () => {
      fc.assert(
        fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 100 })), cuts, (bytes, cuts) => {
          // decode() checks bufferedBytes after every push; push must not throw.
          const items = decode(cut(bytes, cuts), max);
          for (const item of items) {
            assert(item instanceof ProtocolError || item.bytes.length >= HEADER_BYTES);
          }
          assertEquals(plain(items), plain(decode([bytes], max)));
        }),
        { numRuns: 400 },
      );
    },
  );
});
