import { assertEquals } from "@std/assert";
import { crc32 as zlibCrc32 } from "node:zlib";
import fc from "fast-check";
import { crc32, CRC32_POLYNOMIAL } from "../lib/crc32.ts";
import { utf8Encode } from "../lib/text.ts";

/** The textbook definition, one bit at a time: slow, but obviously right. */
function bitByBit(data: Uint8Array): number {
  let crc = 0xffff_ffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ CRC32_POLYNOMIAL : crc >>> 1;
  }
  return (crc ^ 0xffff_ffff) >>> 0;
}

Deno.test("crc32 known values", async (t) => {
  const vectors: [string, Uint8Array, number][] = [
    ["empty", new Uint8Array(0), 0],
    ['"a"', utf8Encode("a"), 0xe8b7be43],
    ['"123456789" (the standard check value)', utf8Encode("123456789"), 0xcbf43926],
    ["the quick brown fox", utf8Encode("The quick brown fox jumps over the lazy dog"), 0x414fa339],
    ["32 zero bytes", new Uint8Array(32), 0x190a55ad],
    ["32 bytes of 0xff", new Uint8Array(32).fill(0xff), 0xff6cab0b],
  ];
  for (const [name, data, expected] of vectors) {
    await t.step(name, () => assertEquals(crc32(data), expected));
  }
  await t.step("the result is unsigned", () => {
    const value = crc32(utf8Encode("123456789"));
    assertEquals(value > 0x7fff_ffff, true);
    assertEquals(value.toString(16), "cbf43926");
  });
});

Deno.test("crc32 matches the bit-by-bit definition for every length up to 100", () => {
  const data = Uint8Array.from({ length: 100 }, (_, i) => (i * 151 + 17) & 0xff);
  for (let length = 0; length <= 100; length++) {
    const piece = data.subarray(100 - length); // also exercises byteOffset
    assertEquals(crc32(piece), bitByBit(piece), `length ${length}`);
  }
});

Deno.test("crc32 continues from a previous value, split anywhere", () => {
  const data = utf8Encode("The quick brown fox jumps over the lazy dog 🌮");
  const whole = crc32(data);
  for (let i = 0; i <= data.length; i++) {
    assertEquals(crc32(data.subarray(i), crc32(data.subarray(0, i))), whole, `split at ${i}`);
  }
});

Deno.test("crc32 agrees with node:zlib", async (t) => {
  await t.step("random inputs", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (data) => {
        assertEquals(crc32(data), zlibCrc32(data));
      }),
      { numRuns: 300 },
    );
  });
  await t.step("random inputs continuing from a random previous value", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.nat({ max: 0xffff_ffff }),
        (data, previous) => {
          assertEquals(crc32(data, previous), zlibCrc32(data, previous));
        },
      ),
      { numRuns: 300 },
    );
  });
  await t.step("1 MiB", () => {
    const data = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + (i >> 8)) & 0xff);
    assertEquals(crc32(data), zlibCrc32(data));
  });
});
