/**
 * Lines typed at the terminal (or piped into standard input).
 *
 * The chat lessons read two kinds of lines: from the network and from the
 * keyboard. The network is a stranger: its lines go through
 * {@linkcode LineDecoder} (lines.ts), which never holds more than its limit,
 * even if the peer never sends a newline. The keyboard is local, so this
 * module uses `TextLineStream` from `@std/streams`, the standard way to split
 * a `ReadableStream` of text into lines (LF or CR LF). It keeps a whole line
 * in memory before we can look at it, which is fine for what a person types
 * (a terminal itself caps a line at a few KiB); a line over our limit is
 * skipped with a one-line notice.
 *
 * @module
 */

import { TextLineStream } from "@std/streams";

const encoder = new TextEncoder();

/**
 * Yields the lines of standard input (without LF or CR LF) until it ends.
 * A line longer than `maxLineBytes` (in UTF-8) is not yielded:
 * `onTooLong` is told instead (by default a line on stderr).
 *
 * @example
 * ```ts ignore
 * import { readTerminalLines } from "./terminal.ts";
 * for await (const line of readTerminalLines(4096)) {
 *   console.log(`you typed ${line}`);
 * }
 * ```
 */
export async function* readTerminalLines(
  maxLineBytes: number,
  onTooLong: (bytes: number) => void = (bytes) =>
    console.error(`that line is ${bytes} bytes, more than the limit of ${maxLineBytes}: not sent`),
): AsyncGenerator<string> {
  const lines = Deno.stdin.readable
    .pipeThrough(new TextDecoderStream())
    // (The npm build of @std has no types: say what the stream carries.)
    .pipeThrough(new TextLineStream() as TransformStream<string, string>);
  for await (const line of lines) {
    // A character takes 1 to 4 bytes in UTF-8: only long lines need counting.
    const bytes = line.length * 3 > maxLineBytes ? encoder.encode(line).length : line.length;
    if (bytes > maxLineBytes) onTooLong(bytes);
    else yield line;
  }
}
