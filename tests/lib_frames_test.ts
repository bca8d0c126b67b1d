import { assert, assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
import { concat } from "@std/bytes";
import fc from "fast-check";
import {
  copyCompleteFrames,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  TruncatedFrameError,
} from "../lib/frames.ts";
import { utf8Encode } from "../lib/text.ts";
import { chunkings, cut } from "./_helpers.ts";

/**
 * Decodes `pieces` as readChunks delivers them: through one reused buffer
 * that is overwritten after each push, so a frame that aliased it would
 * change. Returns the frames and the error that stopped decoding, if any
 * (as readFrames would throw it, after the frames before it). Checks
 * `bufferedBytes` after every push.
 */
function outcome(
  pieces: Uint8Array[],
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): { frames: Uint8Array[]; error?: Error } {
  const decoder = new FrameDecoder(maxFrameBytes);
  const buffer = new Uint8Array(Math.max(0, ...pieces.map((p) => p.length)));
  const frames: Uint8Array[] = [];
  try {
    for (const piece of pieces) {
      buffer.set(piece);
      frames.push(...decoder.push(buffer.subarray(0, piece.length)));
      buffer.fill(0xee);
      const buffered = decoder.bufferedBytes;
      assert(buffered < FRAME_HEADER_BYTES + maxFrameBytes, `${buffered} bytes buffered`);
      if (decoder.error) return { frames, error: decoder.error };
    }
    decoder.end();
  } catch (error) {
    assert(
      error instanceof FrameTooLargeError || error instanceof TruncatedFrameError,
      String(error),
    );
    return { frames, error: error as Error };
  }
  return { frames };
}

/** The frames of `pieces`; throws the error that stopped decoding, if any. */
function decode(pieces: Uint8Array[], maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array[] {
  const { frames, error } = outcome(pieces, maxFrameBytes);
  if (error) throw error;
  return frames;
}

const bytesOf = (length: number) => Uint8Array.from({ length }, (_, i) => (i * 7 + 3) & 0xff);

const SAMPLES: [string, Uint8Array][] = [
  ["empty", new Uint8Array(0)],
  ["one byte", new Uint8Array([0x2a])],
  ["text", utf8Encode("Hello, 🌮!")],
  ["looks like a header", new Uint8Array([0, 0, 0, 5, 0, 0, 0, 0])],
  ["300 bytes", bytesOf(300)],
];

Deno.test("encodeFrame writes the length big-endian", async (t) => {
  await t.step("a short payload", () => {
    assertEquals(
      encodeFrame(utf8Encode("hello")),
      new Uint8Array([0, 0, 0, 5, 104, 101, 108, 108, 111]),
    );
  });
  await t.step("most significant byte first", () => {
    const frame = encodeFrame(new Uint8Array(0x010203));
    assertEquals(frame.subarray(0, 4), new Uint8Array([0x00, 0x01, 0x02, 0x03]));
    assertEquals(frame.length, 4 + 0x010203);
  });
  await t.step("an empty payload is just a header of zeros", () => {
    assertEquals(encodeFrame(new Uint8Array(0)), new Uint8Array(4));
  });
  await t.step("the payload is copied from a subarray, not from its whole buffer", () => {
    const payload = bytesOf(10).subarray(3, 6);
    assertEquals(encodeFrame(payload), new Uint8Array([0, 0, 0, 3, ...payload]));
  });
});

Deno.test("FrameDecoder gives the same frames however the bytes are cut", async (t) => {
  for (const [name, payload] of SAMPLES) {
    await t.step(name, () => {
      for (const [how, pieces] of chunkings(encodeFrame(payload))) {
        assertEquals(decode(pieces), [payload], how);
      }
    });
  }
  const payloads = SAMPLES.map(([, payload]) => payload);
  const all = concat(payloads.map(encodeFrame)) as Uint8Array;
  await t.step("every sample merged into one chunk, then split everywhere", () => {
    for (const [how, pieces] of chunkings(all)) assertEquals(decode(pieces), payloads, how);
  });
  await t.step("frames larger than the chunks", () => {
    const big = [bytesOf(100_000), new Uint8Array(0), bytesOf(70_000), bytesOf(1)];
    const wire = concat(big.map(encodeFrame)) as Uint8Array;
    for (const size of [1000, 4096, 65536, wire.length]) {
      const pieces = Array.from(
        { length: Math.ceil(wire.length / size) },
        (_, i) => wire.subarray(i * size, (i + 1) * size),
      );
      assertEquals(decode(pieces), big, `chunks of ${size}`);
    }
  });
});

Deno.test("FrameDecoder limits and errors", async (t) => {
  const max = 100;
  await t.step("a frame of exactly the limit is accepted", () => {
    assertEquals(decode([encodeFrame(bytesOf(max))], max), [bytesOf(max)]);
  });
  await t.step("a too-large length is rejected from the 4 header bytes alone", () => {
    const decoder = new FrameDecoder(max);
    const header = encodeFrame(bytesOf(max + 1)).subarray(0, 4);
    const error = assertThrows(() => decoder.push(header), FrameTooLargeError);
    assertEquals(error.length, max + 1);
    assertEquals(error.maxFrameBytes, max);
    assertEquals(error.message, "frame of 101 bytes is larger than the limit of 100 bytes");
  });
  await t.step("also when the header arrives in pieces", () => {
    const decoder = new FrameDecoder(max);
    assertEquals(decoder.push(new Uint8Array([0xff, 0xff])), []);
    assertEquals(decoder.bufferedBytes, 2);
    const error = assertThrows(
      () => decoder.push(new Uint8Array([0xff, 0xff])),
      FrameTooLargeError,
    );
    assertEquals(error.length, 0xffff_ffff);
  });
  await t.step("the frames before a too-large one come first, whatever the chunking", () => {
    const wire = concat([encodeFrame(bytesOf(3)), encodeFrame(bytesOf(max + 1))]) as Uint8Array;
    for (const [how, pieces] of chunkings(wire.subarray(0, 7 + 4))) {
      const { frames, error } = outcome(pieces, max);
      assertEquals(frames, [bytesOf(3)], how);
      assertInstanceOf(error, FrameTooLargeError);
    }
    const decoder = new FrameDecoder(max);
    assertEquals(decoder.push(wire), [bytesOf(3)]);
    assertInstanceOf(decoder.error, FrameTooLargeError);
    assertThrows(() => decoder.push(new Uint8Array(1)), FrameTooLargeError);
    assertThrows(() => decoder.end(), FrameTooLargeError);
  });
  await t.step("the default limit is 1 MiB", () => {
    assertEquals(DEFAULT_MAX_FRAME_BYTES, 1 << 20);
    const header = new Uint8Array([0x00, 0x10, 0x00, 0x01]); // 1 MiB + 1
    assertThrows(() => new FrameDecoder().push(header), FrameTooLargeError);
  });
  await t.step("zero-length frames, alone and in a row", () => {
    const decoder = new FrameDecoder(max);
    assertEquals(decoder.push(new Uint8Array(4)), [new Uint8Array(0)]);
    assertEquals(decoder.bufferedBytes, 0);
    assertEquals(decoder.push(new Uint8Array(12)), [
      new Uint8Array(0),
      new Uint8Array(0),
      new Uint8Array(0),
    ]);
  });
  await t.step("end() in the middle of a header", () => {
    const decoder = new FrameDecoder();
    decoder.push(new Uint8Array([0, 0]));
    const error = assertThrows(() => decoder.end(), TruncatedFrameError);
    assertEquals([error.receivedBytes, error.expectedBytes], [2, 4]);
  });
  await t.step("end() in the middle of a payload", () => {
    const decoder = new FrameDecoder();
    decoder.push(encodeFrame(utf8Encode("hello")).subarray(0, 6));
    assertEquals(decoder.bufferedBytes, 6);
    const error = assertThrows(() => decoder.end(), TruncatedFrameError);
    assertEquals(
      error.message,
      "the stream ended in the middle of a frame (6 of 9 bytes received)",
    );
  });
  await t.step("end() right after a header that announced a payload", () => {
    const decoder = new FrameDecoder();
    decoder.push(new Uint8Array([0, 0, 0, 1]));
    assertThrows(() => decoder.end(), TruncatedFrameError);
  });
  await t.step("frames never share memory with the chunk pushed", () => {
    const chunk = concat([encodeFrame(bytesOf(3)), encodeFrame(bytesOf(5))]) as Uint8Array;
    const frames = new FrameDecoder().push(chunk);
    for (const frame of frames) assert(frame.buffer !== chunk.buffer);
    chunk.fill(0);
    assertEquals(frames, [bytesOf(3), bytesOf(5)]);
  });
});

Deno.test("copyCompleteFrames, the fast path", async (t) => {
  const sizeOf = (view: DataView, at: number) => FRAME_HEADER_BYTES + view.getUint32(at);
  const a = encodeFrame(bytesOf(3));
  const b = encodeFrame(new Uint8Array(0));
  const c = encodeFrame(bytesOf(9));
  await t.step("copies the complete frames from start, stopping before a cut one", () => {
    const chunk = concat([new Uint8Array([0xaa]), a, b, c.subarray(0, 6)]) as Uint8Array;
    const frames = copyCompleteFrames(chunk, 1, FRAME_HEADER_BYTES, sizeOf);
    assertEquals(frames, [a, b]);
    // One copy for all of them, not the chunk: the chunk may be reused.
    assert(frames[0].buffer === frames[1].buffer && frames[0].buffer !== chunk.buffer);
    assertEquals(frames[0].buffer.byteLength, a.length + b.length);
    chunk.fill(0);
    assertEquals(frames, [a, b]);
  });
  await t.step("stops where frameBytes returns 0, and before a cut header", () => {
    const chunk = concat([a, c, b, a.subarray(0, 3)]) as Uint8Array;
    const upTo8 = (view: DataView, at: number) => view.getUint32(at) > 8 ? 0 : sizeOf(view, at);
    assertEquals(copyCompleteFrames(chunk, 0, FRAME_HEADER_BYTES, upTo8), [a]);
    assertEquals(copyCompleteFrames(chunk, a.length + c.length, FRAME_HEADER_BYTES, upTo8), [b]);
    assertEquals(copyCompleteFrames(chunk, chunk.length - 3, FRAME_HEADER_BYTES, sizeOf), []);
    assertEquals(copyCompleteFrames(chunk, chunk.length, FRAME_HEADER_BYTES, sizeOf), []);
  });
  await t.step("a header of another size (lesson 07 has 16 bytes, length at 8)", () => {
    const message = new Uint8Array([1, 1, 1, 1, 0, 0, 0, 2, 0xee, 0xff]);
    const chunk = concat([message, message, message.subarray(0, 9)]) as Uint8Array;
    const size = (view: DataView, at: number) => 8 + view.getUint32(at + 4);
    assertEquals(copyCompleteFrames(chunk, 0, 8, size), [message, message]);
  });
});

Deno.test("FrameDecoder properties", async (t) => {
  const cuts = fc.array(fc.nat(), { maxLength: 12 });

  await t.step("payloads round-trip whatever the chunking", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
        cuts,
        (payloads, cuts) => {
          const wire = concat(payloads.map(encodeFrame)) as Uint8Array;
          assertEquals(decode(cut(wire, cuts)), payloads);
        },
      ),
      { numRuns: 300 },
    );
  });

  // Valid frames with a few bytes changed, or cut short: small lengths are
  // likely, so frames, too-large errors and truncations all happen.
  const max = 64;
  const damaged = fc.record({
    payloads: fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 6 }),
    changes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
    keep: fc.nat(),
  }).map(({ payloads, changes, keep }) => {
    const wire = concat(payloads.map(encodeFrame)) as Uint8Array;
    for (const [at, xor] of changes) if (wire.length > 0) wire[at % wire.length] ^= xor;
    return wire.subarray(0, wire.length - (keep % 3 === 0 ? keep % (wire.length + 1) : 0));
  });

  await t.step("damaged bytes give frames, then maybe a typed error, for any chunking", () => {
    const summary = (pieces: Uint8Array[]) => {
      const { frames, error } = outcome(pieces, max); // checks bufferedBytes, error types
      return { frames, error: error?.name };
    };
    fc.assert(
      fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 200 })), cuts, (bytes, cuts) => {
        assertEquals(summary(cut(bytes, cuts)), summary([bytes]));
      }),
      { numRuns: 500 },
    );
  });
});
