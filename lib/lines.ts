/**
 * Line framing: turning a byte stream into lines of text.
 *
 * TCP delivers bytes, not messages, so a program that wants messages has to
 * mark where each one ends. The simplest marker is a newline (LF, byte 0x0a):
 * chat, SMTP, Redis and HTTP headers all use it. {@linkcode LineDecoder} does
 * three things with each chunk it is given:
 *
 * 1. find the next LF with `indexOf` (no byte-by-byte loop);
 * 2. glue the bytes before it to any start of the line kept from earlier
 *    chunks, drop an optional CR before the LF (Windows and many protocols
 *    send CR LF), and check the length;
 * 3. decode the line as UTF-8, strictly: invalid bytes are an error, not "�".
 *
 * Whatever follows the last LF is kept until the next chunk.
 *
 * A peer that never sends LF must not be able to fill our memory, so a line
 * has a maximum length (64 KiB by default); a longer one is a
 * {@linkcode LineTooLongError}, thrown as soon as the limit is passed, without
 * buffering more than the limit (plus one byte: a CR waiting for its LF).
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
import { quote, utf8Decode } from "./text.ts";

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
      let start = 0; // where the bytes not yet used begin
      let end: number;
      while ((end = chunk.indexOf(LF, start)) !== -1) {
        lines.push(this.#finishLine(chunk.subarray(start, end)));
        start = end + 1;
      }
      this.#keep(chunk.subarray(start)); // the start of the next line, if any
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

  /** The bytes kept so far plus `tail` (the bytes before an LF) make a line. */
  #finishLine(tail: Uint8Array): string {
    let line = this.#pending.length === 0 ? tail : concat([...this.#pending, tail]);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > this.#maxLineBytes) throw new LineTooLongError(this.#maxLineBytes);
    return utf8Decode(line, "a line"); // throws Utf8Error for bytes that are not UTF-8
  }

  /**
   * Keeps a copy of the start of an unfinished line (the caller may reuse
   * the chunk), unless that makes it too long. One byte over the limit is
   * allowed if it is a CR: it may be the CR of a CR LF.
   */
  #keep(rest: Uint8Array): void {
    if (rest.length === 0) return;
    const total = this.#pendingBytes + rest.length;
    const crOverLimit = total === this.#maxLineBytes + 1 && rest[rest.length - 1] === CR;
    if (total > this.#maxLineBytes && !crOverLimit) {
      throw new LineTooLongError(this.#maxLineBytes);
    }
    this.#pending.push(rest.slice());
    this.#pendingBytes = total;
  }
}

/**
 * Thrown by {@linkcode readLines} with `requireNewline` (a client reading
 * answers) when the connection ends in the middle of a line: the text came
 * without its LF, so it is a message cut short, not a message.
 *
 * @example
 * ```ts
 * import { TruncatedLineError } from "./lines.ts";
 * new TruncatedLineError("h", "the server").message;
 * // 'the server closed the connection in the middle of a line: "h" came without its LF
 * //  (a truncated message)'
 * ```
 */
export class TruncatedLineError extends LessonError {
  /**
   * Creates the error.
   *
   * @param text what arrived of the line
   * @param what who closed, e.g. "the server"
   */
  constructor(text: string, what = "the peer") {
    const shown = text.length > 60 ? text.slice(0, 60) + "…" : text;
    super(
      `${what} closed the connection in the middle of a line: ${quote(shown)} came without ` +
        "its LF (a truncated message)",
    );
    this.name = "TruncatedLineError";
  }
}

/**
 * Yields the lines a connection sends, until EOF. A last line without LF is
 * yielded too, unless `requireNewline` is set: then it is a
 * {@linkcode TruncatedLineError} (a client should not take half an answer for
 * one). Throws {@linkcode LineTooLongError} or a `Utf8Error` after yielding
 * the lines that came before the bad one.
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
  limits: ReadLimits & { maxLineBytes?: number; requireNewline?: boolean },
): AsyncGenerator<string> {
  const decoder = new LineDecoder(limits.maxLineBytes);
  for await (const chunk of readChunks(conn, limits)) {
    yield* decoder.push(chunk);
    if (decoder.error) throw decoder.error; // after the lines that came before it
  }
  const last = decoder.end();
  if (last !== undefined && limits.requireNewline) throw new TruncatedLineError(last, limits.what);
  if (last !== undefined) yield last;
}
