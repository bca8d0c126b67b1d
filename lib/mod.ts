/**
 * The shared helpers of Deno Socket Lessons.
 *
 * Each lesson imports what it needs from here so that its own file can show
 * the one idea it teaches. Read these modules too: they are short, and each
 * one explains a thing that every network program has to get right.
 *
 * - `flags.ts`: `--host`, `--port`, `--help` and lesson flags
 * - `net.ts`: listen and connect, with one-line errors
 * - `io.ts`: write every byte, read to EOF, with size and time limits
 * - `text.ts`: UTF-8 and hex dumps
 * - `lines.ts`: line framing (lesson 05)
 * - `frames.ts`: length-prefixed frames (lesson 06)
 * - `crc32.ts`, `message.ts`: the application protocol of lesson 07
 * - `connections.ts`, `log.ts`: idle timeouts without a timer per read, and a
 *   log that cannot flood the terminal (lesson 08)
 * - `load.ts`: the load generator of lesson 09
 * - `errors.ts`: expected failures as one line, not a stack trace
 *
 * @module
 */

export * from "./accept.ts";
export * from "./connections.ts";
export * from "./crc32.ts";
export * from "./errors.ts";
export * from "./flags.ts";
export * from "./frames.ts";
export * from "./io.ts";
export * from "./lines.ts";
export * from "./log.ts";
export * from "./load.ts";
export * from "./message.ts";
export * from "./net.ts";
export * from "./text.ts";
