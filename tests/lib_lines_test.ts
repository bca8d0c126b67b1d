import { assert, assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
import { concat } from "@std/bytes";
import fc from "fast-check";
import { DEFAULT_MAX_LINE_BYTES, LineDecoder, LineTooLongError } from "../lib/lines.ts";
import { utf8Encode, Utf8Error } from "../lib/text.ts";
import { chunkings, cut } from "./_helpers.ts";

/**
 * Decodes `pieces` as readChunks delivers them: through one reused buffer
 * that is overwritten after each push. Returns the lines, the last line
 * included, and the error that stopped decoding, if any (as readLines would
 * throw it, after the lines before it). Checks `bufferedBytes` after every
 * push.
 */
function outcome(pieces: Uint8Array[], maxLineBytes?: number): { lines: string[]; error?: Error } {
  const decoder = new LineDecoder(maxLineBytes);
  const limit = (maxLineBytes ?? DEFAULT_MAX_LINE_BYTES) + 1;
  const buffer = new Uint8Array(Math.max(0, ...pieces.map((p) => p.length)));
  const lines: string[] = [];
  try {
    for (const piece of pieces) {
      buffer.set(piece);
      lines.push(...decoder.push(buffer.subarray(0, piece.length)));
      buffer.fill(0x0a); // a reused buffer: stale bytes must not show up
      assert(decoder.bufferedBytes <= limit, `${decoder.bufferedBytes} bytes buffered`);
      if (decoder.error) return { lines, error: decoder.error };
    }
    const last = decoder.end();
    if (last !== undefined) lines.push(last);
  } catch (error) {
    assert(error instanceof LineTooLongError || error instanceof Utf8Error, String(error));
    return { lines, error: error as Error };
  }
  return { lines };
}

/** The lines of `pieces`; throws the error that stopped decoding, if any. */
function decode(pieces: Uint8Array[], maxLineBytes?: number): string[] {
  const { lines, error } = outcome(pieces, maxLineBytes);
  if (error) throw error;
  return lines;
}

const SAMPLES: [string, string[]][] = [
  ["one line", ["Hello, world"]],
  ["CRLF and LF mixed", ["first", "second", "third"]],
  ["empty lines", ["", "", "x", ""]],
  ["UTF-8 split anywhere", ["I am hungry for 🌮", "straße", "日本語"]],
  ["a CR inside a line is kept", ["a\rb", "\r\rc"]],
];

/** Joins lines the way a peer might send them: alternately LF and CR LF. */
function wire(lines: string[]): Uint8Array {
  return utf8Encode(lines.map((line, i) => line + (i % 2 ? "\r\n" : "\n")).join(""));
}

Deno.test("LineDecoder basics", async (t) => {
  await t.step("LF and CR LF end a line; the CR is removed", () => {
    const decoder = new LineDecoder();
    assertEquals(decoder.push(utf8Encode("a\nb\r\nc")), ["a", "b"]);
    assertEquals(decoder.bufferedBytes, 1);
    assertEquals(decoder.end(), "c");
  });
  await t.step("end() returns undefined when the stream ended with LF", () => {
    const decoder = new LineDecoder();
    assertEquals(decoder.push(utf8Encode("a\n")), ["a"]);
    assertEquals(decoder.end(), undefined);
  });
  await t.step("a last line without LF loses a trailing CR too", () => {
    const decoder = new LineDecoder();
    decoder.push(utf8Encode("bye\r"));
    assertEquals(decoder.end(), "bye");
  });
  await t.step("a CR LF split across chunks", () => {
    const decoder = new LineDecoder();
    assertEquals(decoder.push(utf8Encode("abc\r")), []);
    assertEquals(decoder.push(utf8Encode("\ndef\r")), ["abc"]);
    assertEquals(decoder.push(utf8Encode("\n")), ["def"]);
  });
  await t.step("empty chunks change nothing", () => {
    const decoder = new LineDecoder();
    assertEquals(decoder.push(new Uint8Array(0)), []);
    decoder.push(utf8Encode("x"));
    assertEquals(decoder.push(new Uint8Array(0)), []);
    assertEquals(decoder.push(utf8Encode("\n")), ["x"]);
  });
});

Deno.test("LineDecoder gives the same lines however the bytes are cut", async (t) => {
  for (const [name, lines] of SAMPLES) {
    await t.step(name, () => {
      for (const [how, pieces] of chunkings(wire(lines))) {
        assertEquals(decode(pieces), lines, how);
      }
    });
  }
  await t.step("every sample merged into one chunk", () => {
    const all = SAMPLES.flatMap(([, lines]) => lines);
    assertEquals(decode([wire(all)]), all);
    assertEquals(decode(cut(wire(all), [7, 30, 31, 50])), all);
  });
  await t.step("a chunk larger than the limit, full of short lines", () => {
    const lines = Array.from({ length: 50 }, (_, i) => "x".repeat(i % 17));
    assertEquals(decode([wire(lines)], 16), lines);
  });
});

Deno.test("LineDecoder limits", async (t) => {
  const max = 16;
  await t.step("a line of exactly the limit is accepted, with LF or CR LF", () => {
    const line = "x".repeat(max);
    for (const [how, pieces] of chunkings(utf8Encode(`${line}\n${line}\r\n`))) {
      assertEquals(decode(pieces, max), [line, line], how);
    }
  });
  await t.step("one byte over is rejected, however it arrives", () => {
    for (const [how, pieces] of chunkings(utf8Encode("x".repeat(max + 1) + "\n"))) {
      assertThrows(() => decode(pieces, max), LineTooLongError, undefined, how);
    }
  });
  await t.step("the error comes as soon as the limit is passed, never buffering more", () => {
    const decoder = new LineDecoder(max);
    for (let i = 0; i < max; i++) decoder.push(utf8Encode("x"));
    assertEquals(decoder.bufferedBytes, max);
    const error = assertThrows(() => decoder.push(utf8Encode("x")), LineTooLongError);
    assertEquals(error.maxLineBytes, max);
    assertEquals(decoder.bufferedBytes, max);
  });
  await t.step("a CR one past the limit waits for its LF; anything else is too long", () => {
    const decoder = new LineDecoder(max);
    decoder.push(utf8Encode("x".repeat(max) + "\r"));
    assertEquals(decoder.bufferedBytes, max + 1);
    assertThrows(() => decoder.push(utf8Encode("y")), LineTooLongError);
    const ok = new LineDecoder(max);
    ok.push(utf8Encode("x".repeat(max) + "\r"));
    assertEquals(ok.push(utf8Encode("\n")), ["x".repeat(max)]);
  });
  await t.step("a too-long line inside one big chunk: the lines before it come first", () => {
    const bytes = utf8Encode(`short\n${"x".repeat(max + 1)}\nshort\n`);
    const decoder = new LineDecoder(max);
    assertEquals(decoder.push(bytes), ["short"]);
    assertInstanceOf(decoder.error, LineTooLongError);
    assertThrows(() => decoder.push(utf8Encode("more\n")), LineTooLongError);
    assertThrows(() => decoder.end(), LineTooLongError);
  });
  await t.step("a too-long unfinished line after complete ones", () => {
    const decoder = new LineDecoder(max);
    assertEquals(decoder.push(utf8Encode("a\nb\n" + "x".repeat(max + 1))), ["a", "b"]);
    assertInstanceOf(decoder.error, LineTooLongError);
    assertEquals(decoder.bufferedBytes, 0);
  });
  await t.step("the lines before the error, whatever the chunking", () => {
    const bytes = utf8Encode(`one\ntwo\r\n${"x".repeat(max + 2)}\nthree\n`);
    for (const [how, pieces] of chunkings(bytes)) {
      const { lines, error } = outcome(pieces, max);
      assertEquals(lines, ["one", "two"], how);
      assertInstanceOf(error, LineTooLongError);
    }
  });
  await t.step("a huge chunk without LF is rejected without being kept", () => {
    const decoder = new LineDecoder(max);
    assertThrows(() => decoder.push(new Uint8Array(1 << 20)), LineTooLongError);
    assertEquals(decoder.bufferedBytes, 0);
  });
  await t.step("the default limit is 64 KiB", () => {
    assertEquals(DEFAULT_MAX_LINE_BYTES, 65536);
    const line = "y".repeat(DEFAULT_MAX_LINE_BYTES);
    assertEquals(decode([utf8Encode(line + "\n")]), [line]);
    assertThrows(() => decode([utf8Encode(line + "y\n")]), LineTooLongError);
  });
});

Deno.test("LineDecoder rejects invalid UTF-8", async (t) => {
  await t.step("inside one chunk, after a good line", () => {
    const decoder = new LineDecoder();
    assertEquals(decoder.push(new Uint8Array([0x61, 0x0a, 0xff, 0x0a, 0x62, 0x0a])), ["a"]);
    assertInstanceOf(decoder.error, Utf8Error);
    assertThrows(() => new LineDecoder().push(new Uint8Array([0xff, 0x0a])), Utf8Error);
  });
  await t.step("a real U+FFFD is not an error", () => {
    assertEquals(decode([utf8Encode("\uFFFD\nok\n")]), ["\uFFFD", "ok"]);
  });
  await t.step("in a line split across chunks", () => {
    const decoder = new LineDecoder();
    decoder.push(new Uint8Array([0x61, 0xc3]));
    assertThrows(() => decoder.push(new Uint8Array([0x0a])), Utf8Error);
  });
  await t.step("a character cut by LF is invalid", () => {
    assertThrows(() => decode([new Uint8Array([0xf0, 0x9f, 0x0a, 0x8c, 0xae, 0x0a])]), Utf8Error);
  });
});

Deno.test("LineDecoder properties", async (t) => {
  // Lines without LF, and not ending with CR (which would be taken for CR LF).
  const line = fc.string({ unit: "binary", maxLength: 40 })
    .map((s) => s.replaceAll("\n", " "))
    .filter((s) => !s.endsWith("\r"));
  const cuts = fc.array(fc.nat(), { maxLength: 10 });

  await t.step("lines round-trip whatever the chunking", () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 20 }), cuts, (lines, cuts) => {
        assertEquals(decode(cut(wire(lines), cuts)), lines);
      }),
      { numRuns: 300 },
    );
  });

  // Mostly text with LF and CR, sometimes bytes that are not UTF-8.
  const text = fc.constantFrom("a", "b", "\n", "\r", "\r\n", "é", "🌮").map(utf8Encode);
  const notUtf8 = fc.constantFrom([0xff], [0xf0], [0x8c, 0xae]).map((b) => new Uint8Array(b));
  const bytes = fc.array(
    fc.oneof({ weight: 30, arbitrary: text }, { weight: 1, arbitrary: notUtf8 }),
    { maxLength: 80 },
  ).map((pieces) => concat(pieces) as Uint8Array);

  await t.step("any bytes give lines, then maybe a typed error, the same for any chunking", () => {
    const summary = (pieces: Uint8Array[]) => {
      const { lines, error } = outcome(pieces, 8); // checks bufferedBytes, error types
      return { lines, error: error?.name };
    };
    fc.assert(
      fc.property(bytes, cuts, (bytes, cuts) => {
        assertEquals(summary(cut(bytes, cuts)), summary([bytes]));
      }),
      { numRuns: 500 },
    );
  });
});

Deno.test("LineTooLongError is a one-line LessonError", () => {
  const error = new LineTooLongError(1024);
  assertInstanceOf(error, Error);
  assertEquals(error.message, "line is longer than the limit of 1024 bytes");
});
