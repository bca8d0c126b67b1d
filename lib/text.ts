/**
 * Bytes and text.
 *
 * A socket carries bytes, never strings. Every lesson that shows text has to
 * turn strings into bytes (UTF-8 encoding) and bytes back into strings (UTF-8
 * decoding). The catch: a read can end in the middle of a character (🌮 is
 * four bytes and may arrive as 1 + 3), and a peer can send bytes that are not
 * UTF-8 at all. This module handles both, and prints bytes so a learner can
 * see them.
 *
 * @module
 */

import { LessonError } from "./errors.ts";

const encoder = new TextEncoder();

/**
 * Encodes a string as UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { utf8Encode } from "./text.ts";
 * utf8Encode("é"); // Uint8Array [0xc3, 0xa9]: one character, two bytes
 * ```
 */
export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Thrown when bytes that should be UTF-8 are not. */
export class Utf8Error extends LessonError {
  /**
   * Creates the error.
   *
   * @param where what was being decoded, e.g. "the request"
   */
  constructor(where = "the input") {
    super(`${where} is not valid UTF-8 text`);
    this.name = "Utf8Error";
  }
}

/**
 * Decodes a complete UTF-8 message. Throws {@linkcode Utf8Error} for invalid
 * bytes, instead of silently replacing them with "�".
 *
 * @param where what is being decoded, used in the error message
 * @example
 * ```ts
 * import { utf8Decode } from "./text.ts";
 * utf8Decode(new Uint8Array([0x68, 0x69])); // "hi"
 * ```
 */
export function utf8Decode(bytes: Uint8Array, where = "the input"): string {
  // Fast path. Why: in Deno, decoding with `fatal: true` costs several times
  // more than without (`deno task bench`, lines.ts: 64 KiB lines at 1.4-1.5
  // GB/s strictly, too near the 1 GB/s bar, against 2.7-2.9 this way; 64 B
  // lines at 3.0 against 6.2 M/s). Without `fatal`, invalid bytes become "�",
  // so only if "�" shows up (rare: a real one was sent, or the bytes are bad)
  // do we decode again, strictly, to tell which.
  const text = lenientDecoder.decode(bytes);
  if (text.includes("\uFFFD")) {
    try {
      strictDecoder.decode(bytes);
    } catch {
      throw new Utf8Error(where);
    }
  }
  return text;
}

// Shared by every call: a decoder used without `stream` keeps no state.
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 that arrives in pieces. When a chunk ends part-way through a
 * character, the first bytes are kept until the rest arrives.
 *
 * @example
 * ```ts
 * import { Utf8StreamDecoder } from "./text.ts";
 * const taco = new Uint8Array([0xf0, 0x9f, 0x8c, 0xae]); // 🌮
 * const decoder = new Utf8StreamDecoder();
 * decoder.decode(taco.subarray(0, 1)); // "" (waiting for the rest)
 * decoder.decode(taco.subarray(1)); // "🌮"
 * decoder.end(); // "" (nothing left over)
 * ```
 */
export class Utf8StreamDecoder {
  #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #where: string;

  /**
   * Creates a decoder with nothing buffered.
   *
   * @param where what is being decoded, used in the error message
   */
  constructor(where = "the input") {
    this.#where = where;
  }

  /** Decodes one chunk; returns the complete characters it finished. */
  decode(chunk: Uint8Array): string {
    try {
      return this.#decoder.decode(chunk, { stream: true });
    } catch {
      throw new Utf8Error(this.#where);
    }
  }

  /** Call at end of stream: throws if it ended part-way through a character. */
  end(): string {
    try {
      return this.#decoder.decode();
    } catch {
      throw new Utf8Error(this.#where);
    }
  }
}

/**
 * Counts characters the way a person does: by Unicode code point, so 🌮 is one
 * character (JavaScript's `"🌮".length` is 2, because strings count UTF-16 units).
 *
 * @example
 * ```ts
 * import { countCharacters } from "./text.ts";
 * countCharacters("🌮"); // 1
 * ```
 */
export function countCharacters(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/**
 * Quotes text for display, like Python's `repr`: `Hello` becomes `"Hello"`,
 * a newline becomes `\n`, so invisible characters become visible. JSON's
 * escapes cover the C0 controls (ESC is `\u001b`); the characters a
 * terminal would still obey ({@linkcode terminalSafe}'s list: DEL, the C1
 * controls, the bidirectional controls) are escaped the same way.
 *
 * @example
 * ```ts
 * import { quote } from "./text.ts";
 * quote("hi\n"); // "\"hi\\n\""
 * quote("\u202egnp.exe"); // "\"\\u202egnp.exe\"" (the override shows, does not act)
 * ```
 */
export function quote(text: string): string {
  return JSON.stringify(text).replace(UNSAFE_AFTER_JSON, (char) => `\\u${hex(char, 4)}`);
}

/**
 * What a terminal obeys instead of showing: the C0 controls (U+0000 to
 * U+001F: BEL, BS, TAB, LF, CR, ESC, ...), DEL (U+007F), the C1 controls
 * (U+0080 to U+009F: some terminals take U+009B as ESC [), the line and
 * paragraph separators (U+2028, U+2029), and the bidirectional controls
 * that reorder the text around them (U+061C, U+200E, U+200F, U+202A to
 * U+202E, U+2066 to U+2069).
 */
// deno-lint-ignore no-control-regex -- finding control characters is the point
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
/** {@linkcode UNSAFE} but the C0 controls, which JSON.stringify escapes already. */
const UNSAFE_AFTER_JSON = /[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/** A character's code as `digits` lowercase hex digits. */
function hex(char: string, digits: number): string {
  return char.charCodeAt(0).toString(16).padStart(digits, "0");
}

/**
 * Makes text from the network safe to print on a terminal. A terminal does
 * not only show what it is given: it obeys control characters. CR moves back
 * to the start of the line (what follows overwrites it), ESC starts commands
 * (`ESC [2K` clears the line, `ESC ]0;...BEL` sets the window title), and
 * U+202E shows the rest of the line backwards. So a peer who could send them
 * raw could rewrite what you see: fake a message from someone else, hide
 * text, retitle your window.
 *
 * Every such character (the C0 controls, DEL, the C1 controls, the line and
 * paragraph separators, the bidirectional controls) is shown as its code
 * instead: `\xHH` for the one-byte ones (ESC is `\x1b`, CR `\x0d`, TAB
 * `\x09`), `\uHHHH` for the others (`\u202e`). Everything else, accents
 * and emoji included, is unchanged. A backslash is left as it is, so a
 * peer who types `\x1b` looks like one who sent ESC: harmless, since only
 * the real character does anything. The browser's rule is the same idea:
 * `textContent`, never `innerHTML` (lesson 13).
 *
 * One regular expression pass: about as fast as copying the string, which
 * is plenty for a chat (the text has already crossed the network).
 *
 * @example
 * ```ts
 * import { terminalSafe } from "./text.ts";
 * terminalSafe("hi\r\x1b[2Kcarol: hello"); // "hi\\x0d\\x1b[2Kcarol: hello"
 * terminalSafe("abc\u202edef"); // "abc\\u202edef"
 * terminalSafe("Grüße 🌮"); // "Grüße 🌮" (unchanged)
 * ```
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (char) => {
    const code = char.charCodeAt(0);
    return code <= 0xff ? `\\x${hex(char, 2)}` : `\\u${hex(char, 4)}`;
  });
}

/**
 * Formats bytes as a classic hex dump: offset, 16 bytes in hex, and the
 * printable ASCII characters (others shown as `.`).
 *
 * @example
 * ```ts
 * import { hexdump } from "./text.ts";
 * hexdump(new TextEncoder().encode("Hi\n"));
 * // "00000000  48 69 0a                                          |Hi.|"
 * ```
 */
export function hexdump(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const row = bytes.subarray(offset, offset + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0"));
    const left = hex.slice(0, 8).join(" ");
    const right = hex.slice(8).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."))
      .join("");
    lines.push(
      `${offset.toString(16).padStart(8, "0")}  ${left.padEnd(23)}  ${
        right.padEnd(23)
      }  |${ascii}|`,
    );
  }
  return lines.join("\n");
}

/**
 * Makes `size` random bytes, for test payloads. (`crypto.getRandomValues`
 * fills at most 64 KiB per call, so larger buffers are filled in slices.)
 *
 * @example
 * ```ts
 * import { randomBytes } from "./text.ts";
 * randomBytes(16).length; // 16
 * ```
 */
export function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

/**
 * `count` and a noun, in the singular for 1: `plural(1, "byte")` is
 * `"1 byte"`, `plural(2, "byte")` is `"2 bytes"`.
 *
 * @example
 * ```ts
 * import { plural } from "./text.ts";
 * plural(0, "frame"); // "0 frames"
 * ```
 */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
