import { assertEquals, assertThrows } from "@std/assert";
import {
  countCharacters,
  hexdump,
  quote,
  terminalSafe,
  utf8Decode,
  utf8Encode,
  Utf8Error,
  Utf8StreamDecoder,
} from "../lib/text.ts";

const SAMPLES = [
  "",
  "Hello, world",
  "straße",
  "I am hungry for 🌮",
  "日本語 ok",
  "a\u0000b",
  "🌮🌮🌮",
];

Deno.test("utf8 encode and decode", async (t) => {
  await t.step("round-trips text", () => {
    for (const text of SAMPLES) assertEquals(utf8Decode(utf8Encode(text)), text);
  });
  await t.step("counts bytes and characters differently", () => {
    assertEquals(utf8Encode("🌮").length, 4);
    assertEquals("🌮".length, 2);
    assertEquals(countCharacters("🌮"), 1);
    assertEquals(countCharacters("straße"), 6);
    assertEquals(utf8Encode("straße").length, 7);
  });
  await t.step("rejects invalid UTF-8 with a one-line error", () => {
    const error = assertThrows(
      () => utf8Decode(new Uint8Array([0x61, 0xff]), "the request"),
      Utf8Error,
    );
    assertEquals(error.message, "the request is not valid UTF-8 text");
  });
  await t.step("rejects a character cut off at the end", () => {
    assertThrows(() => utf8Decode(utf8Encode("🌮").subarray(0, 3)), Utf8Error);
  });
});

Deno.test("Utf8StreamDecoder decodes text split at every byte boundary", async (t) => {
  for (const text of SAMPLES) {
    await t.step(quote(text), () => {
      const bytes = utf8Encode(text);
      for (let split = 0; split <= bytes.length; split++) {
        const decoder = new Utf8StreamDecoder();
        const out = decoder.decode(bytes.subarray(0, split)) +
          decoder.decode(bytes.subarray(split)) +
          decoder.end();
        assertEquals(out, text, `split at byte ${split}`);
      }
      // and one byte at a time
      const decoder = new Utf8StreamDecoder();
      let out = "";
      for (let i = 0; i < bytes.length; i++) out += decoder.decode(bytes.subarray(i, i + 1));
      assertEquals(out + decoder.end(), text);
    });
  }
  await t.step("holds back a partial character until it completes", () => {
    const decoder = new Utf8StreamDecoder();
    assertEquals(decoder.decode(new Uint8Array([0xf0, 0x9f])), "");
    assertEquals(decoder.decode(new Uint8Array([0x8c, 0xae, 0x21])), "🌮!");
  });
  await t.step("end() throws if the stream stopped mid-character", () => {
    const decoder = new Utf8StreamDecoder();
    decoder.decode(new Uint8Array([0xf0, 0x9f]));
    assertThrows(() => decoder.end(), Utf8Error);
  });
  await t.step("invalid bytes throw Utf8Error", () => {
    assertThrows(() => new Utf8StreamDecoder().decode(new Uint8Array([0xc3, 0x28])), Utf8Error);
  });
});

Deno.test("quote shows text like Python's repr, JSON-quoted", () => {
  assertEquals(quote("Hello, world"), '"Hello, world"');
  assertEquals(quote('say "hi"\n'), '"say \\"hi\\"\\n"');
  // What JSON leaves raw but a terminal obeys: DEL, C1, bidirectional controls.
  assertEquals(quote("a\x1bb\x7f\x9b\u202e"), String.raw`"a\u001bb\u007f\u009b\u202e"`);
  assertEquals(JSON.parse(quote("a\x7f\u2066\\\u202e")), "a\x7f\u2066\\\u202e"); // still JSON
});

Deno.test("terminalSafe shows control characters instead of obeying them", async (t) => {
  await t.step("the attack from issue 17: CR, ESC [2K, a title change", () => {
    const hostile = "harmless\r\x1b[2Kcarol: please send me your password\x1b]0;owned\x07";
    assertEquals(
      terminalSafe(hostile),
      String.raw`harmless\x0d\x1b[2Kcarol: please send me your password\x1b]0;owned\x07`,
    );
  });
  await t.step("every C0 control, DEL and every C1 control, as \\xHH", () => {
    for (let code = 0; code <= 0x9f; code++) {
      if (code >= 0x20 && code < 0x7f) continue;
      const char = String.fromCharCode(code);
      assertEquals(terminalSafe(`a${char}b`), `a\\x${code.toString(16).padStart(2, "0")}b`);
    }
    assertEquals(terminalSafe("\t\n\0"), String.raw`\x09\x0a\x00`);
  });
  await t.step("bidirectional controls and line separators, as \\uHHHH", () => {
    const codes = [0x61c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e];
    codes.push(0x2066, 0x2067, 0x2068, 0x2069);
    for (const code of codes) {
      assertEquals(
        terminalSafe(`a${String.fromCharCode(code)}b`),
        `a\\u${code.toString(16).padStart(4, "0")}b`,
      );
    }
    assertEquals(terminalSafe("invoice\u202efdp.exe"), String.raw`invoice\u202efdp.exe`);
  });
  await t.step("printable text is unchanged: ASCII, accents, CJK, emoji, backslashes", () => {
    let ascii = "";
    for (let code = 0x20; code < 0x7f; code++) ascii += String.fromCharCode(code);
    for (
      const text of [...SAMPLES.filter((s) => !s.includes("\0")), ascii, "a\\x1b", "\u00a0é\u200b"]
    ) {
      assertEquals(terminalSafe(text), text);
    }
  });
  await t.step("the result has no control or bidirectional character left", () => {
    let all = "";
    for (let code = 0; code < 0x3000; code++) all += String.fromCharCode(code);
    const shown = terminalSafe(all);
    assertEquals(
      // deno-lint-ignore no-control-regex -- finding control characters is the point
      shown.match(/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/),
      null,
    );
  });
});

Deno.test("hexdump", async (t) => {
  await t.step("one short line", () => {
    assertEquals(
      hexdump(utf8Encode("Hi\n")),
      // 16 columns of "xx " always take the same width, so the ASCII column lines up.
      "00000000  48 69 0a" + " ".repeat(42) + "|Hi.|",
    );
  });
  await t.step("full lines with offsets and a gap after 8 bytes", () => {
    const bytes = Uint8Array.from({ length: 20 }, (_, i) => i + 0x41);
    assertEquals(
      hexdump(bytes),
      "00000000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|\n" +
        "00000010  51 52 53 54                                       |QRST|",
    );
  });
  await t.step("empty input gives empty output", () => assertEquals(hexdump(new Uint8Array()), ""));
});
