/**
 * Comparing bytes in a lesson's checks: on a mismatch, the error says where
 * the first difference is and shows both sides as a hex dump, side by side
 * (std's assertEquals would print every byte of a 16 MiB array as a number).
 * `deno test` and `deno task exercise NN` both print that message.
 *
 * @module
 */
import { AssertionError } from "@std/assert";

const hex = (byte: number | undefined) =>
  byte === undefined ? "  " : byte.toString(16).padStart(2, "0");
const ascii = (byte: number | undefined) =>
  byte === undefined ? " " : byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : ".";

/**
 * Rows of `came` and `expected` side by side, 8 bytes a side, from `from`
 * for `rows` rows; a `!` marks the rows where they differ.
 */
export function sideBySide(came: Uint8Array, expected: Uint8Array, from: number, rows = 8): string {
  const lines = [`offset    ${"came".padEnd(34)}    ${"expected"}`];
  const start = from - (from % 8);
  for (let row = 0; row < rows; row++) {
    const at = start + row * 8;
    if (at >= came.length && at >= expected.length) break;
    const side = (bytes: Uint8Array) => {
      const part = Array.from({ length: 8 }, (_, i) => bytes[at + i]);
      return `${part.map(hex).join(" ")}  |${part.map(ascii).join("")}|`;
    };
    const differ = Array.from({ length: 8 }, (_, i) => came[at + i] !== expected[at + i]).some(
      Boolean,
    );
    lines.push(
      `${at.toString(16).padStart(8, "0")}  ${side(came)}  ${differ ? "!" : " "} ${side(expected)}`,
    );
  }
  return lines.join("\n");
}

/**
 * Throws unless `came` and `expected` hold the same bytes; the message gives
 * both lengths, the first differing offset, and a side-by-side hex dump there.
 *
 * @example
 * ```ts
 * import { assertBytes } from "./_bytes.ts";
 * assertBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2]), "the echo");
 * ```
 */
export function assertBytes(came: Uint8Array, expected: Uint8Array, what = "the bytes"): void {
  const shorter = Math.min(came.length, expected.length);
  let first = 0;
  while (first < shorter && came[first] === expected[first]) first++;
  if (first === shorter && came.length === expected.length) return;
  const where = first === shorter
    ? `the first ${first} bytes are right, then ${
      came.length < expected.length ? "the bytes stop" : "more bytes come than expected"
    }`
    : `the first difference is at byte ${first} (0x${first.toString(16)})`;
  throw new AssertionError(
    `${what}: ${came.length} bytes came, ${expected.length} were expected; ${where}:\n` +
      sideBySide(came, expected, Math.max(0, first - 16)),
  );
}
