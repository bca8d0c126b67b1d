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
 * buffering more than the limit.
 *
 * @module
 */

import { concat } from "@std/bytes";
import { LessonError } from "./errors.ts";
import { type ByteConn, readChunks, type ReadLimits } from "./io.ts";
import { utf8Decode } from "./text.ts";

/** The default maximum line length in bytes, not counting the LF (64 KiB). */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/** A line was longer than the decoder's limit. */
export class LineTooLongError extends LessonError {
  /** The limit that was exceeded, in bytes. */
  maxLineBytes: number;

  /**
   * Creates the error.
   *
   * @param maxLineBytes the limit that was exceeded
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
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  /**
   * Creates a decoder with nothing buffered.
   *
   * @param maxLineBytes the longest line accepted, in bytes, not counting CR LF
   */
  constructor(maxLineBytes = DEFAULT_MAX_LINE_BYTES) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** Bytes received that are not yet part of a complete line. */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Adds a chunk; returns the lines it completed (possibly none). Throws
   * {@linkcode LineTooLongError} or a UTF-8 error.
   */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let start = 0;
    while (start <= chunk.length) {
      const end = chunk.indexOf(LF, start);
      if (end === -1) {
        const rest = chunk.subarray(start);
        // Allow one byte over the limit: it may be the CR of a CR LF.
        if (this.#pendingBytes + rest.length > this.#maxLineBytes + 1) {
          throw new LineTooLongError(this.#maxLineBytes);
        }
        if (rest.length > 0) {
          this.#pending.push(rest.slice());
          this.#pendingBytes += rest.length;
        }
        break;
      }
      lines.push(this.#finishLine(chunk.subarray(start, end)));
      start = end + 1;
    }
    return lines;
  }

  /**
   * Call at end of stream. Returns the last line if it had no LF, or
   * `undefined` if nothing was left over.
   */
  end(): string | undefined {
    if (this.#pendingBytes === 0) return undefined;
    return this.#finishLine(new Uint8Array(0));
  }

  #finishLine(tail: Uint8Array): string {
    let line = this.#pending.length === 0 ? tail : concat([...this.#pending, tail]) as Uint8Array;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > this.#maxLineBytes) throw new LineTooLongError(this.#maxLineBytes);
    return utf8Decode(line, "the line");
  }
}

/**
 * Yields the lines a connection sends, until EOF. A last line without LF is
 * yielded too.
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
  }
  const last = decoder.end();
  if (last !== undefined) yield last;
}
