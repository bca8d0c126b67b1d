/**
 * Colour for the course's tools (the tour, the exercise checker), only where
 * it helps: on a terminal, and never when `NO_COLOR` is set.
 *
 * `@std/fmt/colors` honours `NO_COLOR` but colours a file or a pipe too, so
 * `deno task tour > tour.txt` got escape codes (`\x1b[31m`) in the file.
 * Importing this module turns colour off unless standard output is a
 * terminal and `NO_COLOR` is unset or empty (https://no-color.org: any
 * non-empty value means no colour). `Deno.noColor` reads `NO_COLOR` for us,
 * without an `--allow-env` permission.
 *
 * @module
 */
import { setColorEnabled } from "@std/fmt/colors";

export { bold, green, red, yellow } from "@std/fmt/colors";

/** True if output to `stream` may be coloured: a terminal, and no `NO_COLOR`. */
export function colorWanted(stream: { isTerminal(): boolean } = Deno.stdout): boolean {
  return !Deno.noColor && stream.isTerminal();
}

setColorEnabled(colorWanted());
