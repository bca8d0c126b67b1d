/**
 * Line framing: turning a byte stream into lines of text.
 *
 * TCP delivers bytes, not messages, so a program that wants messages has to
 * mark where each one ends. The simplest marker is a newline (LF, byte 0x0a):
 * chat, SMTP, Redis and HTTP headers all use it. {@linkcode LineDecoder}
 * collects bytes until it sees LF, removes an optional CR before it (Windows
 * and many protocols send CRLF), and decodes the line as UTF-8.
 *
 * A peer that never sends LF must not be able to fill our memory, so a line
 * has a maximum length (64 KiB by default); a longer one is a
 * {@linkcode LineTooLongError}, thrown as soon as the limit is passed, without
 * buffering more than the limit (plus one byte: a CR waiting for its LF).
 *
 * Speed: a read usually brings many lines at once. The lines that lie
 * entirely inside one chunk are decoded with a single UTF-8 decode and a
 * string `split`, which is about ten times faster than decoding them one by
 * one; only a line that started in an earlier chunk is glued together.
 *
 * `@std/streams` has `DelimiterStream` and `TextLineStream`, which split a
 * `ReadableStream` the same way, but they have no line-length limit, and in
 * Deno reading `conn.readable` to its end closes the whole connection
 * (denoland/deno#22258), so {@linkcode readLines} reads with `conn.read`
 * instead (see `io.ts`).
 *
 * @module
 */

import { concat } from "@std/bytes";
import { LessonError } from "./errors.ts";
import { type ByteConn, readChunks, type ReadLimits } from "./io.ts";
import { Utf8Error } from "./text.ts";

// Re-exported so that this module's documentation is complete on its own.
export { LessonError } from "./errors.ts";
export type { ByteConn, ReadLimits } from "./io.ts";

/**
 * The default maximum line length in bytes, not counting CR LF (64 KiB).
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_LINE_BYTES, LineDecoder } from "./lines.ts";
 * const decoder = new LineDecoder(2 * DEFAULT_MAX_LINE_BYTES); // allow 128 KiB
 * ```
 */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;

// Decoding UTF-8 with `fatal: true` costs several times more in Deno than
// without, and without it every invalid sequence becomes U+FFFD "�". So we
// decode leniently, and only if the text contains "�" (rare, and possibly a
// real "�" that was sent) decode again strictly to find out. (`utf8Decode`
// in text.ts is simpler, but creates a TextDecoder per call.)
const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes UTF-8, or returns `undefined` if `bytes` are not valid UTF-8. */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  const text = lenient.decode(bytes);
  if (text.includes("\uFFFD")) {
    try {
      strict.decode(bytes);
    } catch {
      return undefined;
    }
  }
  return text;
}

/**
 * A line was longer than the decoder's limit. The peer broke the protocol:
 * close the connection.
 *
 * @example
 * ```ts
 * import { LineDecoder, LineTooLongError } from "./lines.ts";
 * try {
 *   new LineDecoder(4).push(new TextEncoder().encode("hello\n"));
 * } catch (error) {
 *   if (error instanceof LineTooLongError) console.log(error.message);
 *   // "line is longer than the limit of 4 bytes"
 * }
 * ```
 */
export class LineTooLongError extends LessonError {
  /** The limit that was exceeded, in bytes. */
  maxLineBytes: number;

  /**
   * Creates the error.
   *
   * @param maxLineBytes the limit that was exceeded
   * @example
   * ```ts
   * import { LineTooLongError } from "./lines.ts";
   * new LineTooLongError(1024).message; // "line is longer than the limit of 1024 bytes"
   * ```
   */
  constructor(maxLineBytes: number) {
    super(`line is longer than the limit of ${maxLineBytes} bytes`);
    this.name = "LineTooLongError";
    this.maxLineBytes = maxLineBytes;
  }
}

/**
 * Splits a byte stream into UTF-8 lines, whatever the chunk boundaries.
 *
 * A line that is too long or not UTF-8 means the peer broke the protocol.
 * `push` still returns the lines that came before it, and the problem is
 * then in {@linkcode LineDecoder.error}; `push` and `end` throw it from then
 * on. Stop using the decoder and close the connection.
 *
 * @example
 * ```ts
 * import { LineDecoder } from "./lines.ts";
 * const decoder = new LineDecoder();
 * const bytes = new TextEncoder().encode("He");
 * decoder.push(bytes); // [] (no complete line yet)
 * decoder.push(new TextEncoder().encode("llo\r\nwor")); // ["Hello"]
 * decoder.push(new TextEncoder().encode("ld\n")); // ["world"]
 * ```
 */
export class LineDecoder {
  #maxLineBytes: number;
  /** Copies of the start of an unfinished line, in order. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #error: LessonError | undefined;

  /**
   * Creates a decoder with nothing buffered.
   *
   * @param maxLineBytes the longest line accepted, in bytes, not counting CR LF
   * @example
   * ```ts
   * import { LineDecoder } from "./lines.ts";
   * const decoder = new LineDecoder(1024); // lines of up to 1 KiB
   * ```
   */
  constructor(maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {
    this.#maxLineBytes = maxLineBytes;
  }

  /**
   * Bytes received that are not yet part of a complete line. Never more than
   * the limit plus one (a CR waiting for its LF).
   *
   * @example
   * ```ts
   * import { LineDecoder } from "./lines.ts";
   * const decoder = new LineDecoder();
   * decoder.push(new TextEncoder().encode("abc"));
   * decoder.bufferedBytes; // 3
   * ```
   */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * The problem found after the lines the last `push` returned: a
   * {@linkcode LineTooLongError} or a `Utf8Error`, or `undefined` if all is
   * well.
   *
   * @example
   * ```ts
   * import { LineDecoder } from "./lines.ts";
   * const decoder = new LineDecoder(8);
   * decoder.push(new TextEncoder().encode("short\nthis one is too long"));
   * // ["short"]
   * decoder.error?.message; // "line is longer than the limit of 8 bytes"
   * ```
   */
  get error(): LessonError | undefined {
    return this.#error;
  }

  /**
   * Adds a chunk; returns the lines it completed (possibly none). The chunk
   * is not kept, so the caller may reuse its buffer. Throws
   * {@linkcode LineTooLongError} or a `Utf8Error` if the problem comes
   * before any line of this chunk (otherwise see {@linkcode LineDecoder.error}).
   *
   * @example
   * ```ts
   * import { LineDecoder } from "./lines.ts";
   * const decoder = new LineDecoder();
   * decoder.push(new TextEncoder().encode("one\ntwo\nthr")); // ["one", "two"]
   * ```
   */
  push(chunk: Uint8Array): string[] {
    if (this.#error) throw this.#error;
    const lines: string[] = [];
    try {
      this.#decode(chunk, lines);
    } catch (error) {
      if (!(error instanceof LessonError)) throw error; // a bug
      this.#error = error;
      if (lines.length === 0) throw error;
    }
    return lines;
  }

  /**
   * Call at end of stream. Returns the last line if it had no LF, or
   * `undefined` if nothing was left over.
   *
   * @example
   * ```ts
   * import { LineDecoder } from "./lines.ts";
   * const decoder = new LineDecoder();
   * decoder.push(new TextEncoder().encode("bye")); // []
   * decoder.end(); // "bye"
   * ```
   */
  end(): string | undefined {
    if (this.#error) throw this.#error;
    if (this.#pendingBytes === 0) return undefined;
    return this.#finishLine(new Uint8Array(0));
  }

  #decode(chunk: Uint8Array, lines: string[]): void {
    let start = 0;
    if (this.#pendingBytes > 0) {
      // The first LF ends the line that started in an earlier chunk.
      const end = chunk.indexOf(LF);
      if (end === -1) return this.#keep(chunk);
      lines.push(this.#finishLine(chunk.subarray(0, end)));
      start = end + 1;
    }
    // The lines between `start` and the last LF lie entirely inside this
    // chunk. Decode them all at once; if one is bad, go again one by one,
    // to keep the lines before it and stop at it.
    const last = chunk.lastIndexOf(LF);
    if (last >= start) {
      const complete = chunk.subarray(start, last); // without the last LF
      if (!this.#decodeAll(complete, lines)) this.#decodeOneByOne(complete, lines);
      start = last + 1;
    }
    this.#keep(chunk.subarray(start));
  }

  /** Fast: adds the LF-separated lines in `bytes`, or returns false if one is bad. */
  #decodeAll(bytes: Uint8Array, lines: string[]): boolean {
    if (bytes.length > this.#maxLineBytes && !this.#allWithinLimit(bytes)) return false;
    const text = decodeUtf8(bytes);
    if (text === undefined) return false;
    for (const line of text.split("\n")) {
      lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
    }
    return true;
  }

  /** Slow: adds the LF-separated lines in `bytes` one at a time, up to a bad one. */
  #decodeOneByOne(bytes: Uint8Array, lines: string[]): void {
    for (let start = 0; start <= bytes.length;) {
      let end = bytes.indexOf(LF, start);
      if (end === -1) end = bytes.length;
      lines.push(this.#finishLine(bytes.subarray(start, end)));
      start = end + 1;
    }
  }

  /** Whether every LF-separated line in `bytes` is within the limit. */
  #allWithinLimit(bytes: Uint8Array): boolean {
    for (let start = 0; start <= bytes.length;) {
      let end = bytes.indexOf(LF, start);
      if (end === -1) end = bytes.length;
      const length = end > start && bytes[end - 1] === CR ? end - start - 1 : end - start;
      if (length > this.#maxLineBytes) return false;
      start = end + 1;
    }
    return true;
  }

  /** Keeps a copy of the start of an unfinished line (the chunk may be reused). */
  #keep(rest: Uint8Array): void {
    if (rest.length === 0) return;
    if (this.#tooLong(rest)) throw new LineTooLongError(this.#maxLineBytes);
    this.#pending.push(rest.slice());
    this.#pendingBytes += rest.length;
  }

  /** The pending bytes plus `tail` make a complete line. */
  #finishLine(tail: Uint8Array): string {
    if (this.#tooLong(tail)) throw new LineTooLongError(this.#maxLineBytes);
    let line = this.#pending.length === 0 ? tail : concat([...this.#pending, tail]) as Uint8Array;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    const text = decodeUtf8(line);
    if (text === undefined) throw new Utf8Error("a line");
    return text;
  }

  /**
   * Whether the pending bytes followed by `more` are longer than the limit.
   * One byte over is allowed if it is a CR: it may be the CR of a CR LF.
   */
  #tooLong(more: Uint8Array): boolean {
    const total = this.#pendingBytes + more.length;
    if (total <= this.#maxLineBytes) return false;
    if (total > this.#maxLineBytes + 1) return true;
    const lastChunk = more.length > 0 ? more : this.#pending[this.#pending.length - 1];
    return lastChunk[lastChunk.length - 1] !== CR;
  }
}

/**
 * Yields the lines a connection sends, until EOF. A last line without LF is
 * yielded too. Throws {@linkcode LineTooLongError} or a `Utf8Error` after
 * yielding the lines that came before the bad one.
 *
 * @example
 * ```ts ignore
 * import { readLines } from "./lines.ts";
 * for await (const line of readLines(conn, { idleTimeoutMs: 10_000 })) {
 *   console.log(line);
 * }
 * ```
 */
export async function* readLines(
  conn: ByteConn,
  limits: ReadLimits & { maxLineBytes?: number },
): AsyncGenerator<string> {
  const decoder = new LineDecoder(limits.maxLineBytes);
  for await (const chunk of readChunks(conn, limits)) {
    yield* decoder.push(chunk);
    if (decoder.error) throw decoder.error; // after the lines that came before it
  }
  const last = decoder.end();
  if (last !== undefined) yield last;
}
