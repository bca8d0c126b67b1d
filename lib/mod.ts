/**
 * The shared helpers of Deno Socket Lessons.
 *
 * Each lesson imports what it needs from here so that its own file can show
 * the one idea it teaches. Read these modules too: each one explains a thing
 * that every network program has to get right, the plain way first. Where
 * each main export lives:
 *
 * - `flags.ts` (every lesson): `parseFlags` for `--host`, `--port`,
 *   `--help` and lesson flags; `idleTimeoutFlag`, `timeoutFlag`,
 *   `maxConnectionsFlag`; `parseHostPort` for a `HOST:PORT` flag
 * - `errors.ts`: `runMain` (an expected failure is one line, not a stack
 *   trace), `LessonError`, `UsageError`, `TimeoutError`, `describeNetError`
 * - `net.ts`: `listen`, `connect`, `connectUnix` (with one-line errors), `formatAddr`,
 *   `closeQuietly`
 * - `signals.ts`: `onShutdown`, `shutdownRequested`, `prepareSignals`: Ctrl-C
 *   that always ends with the server's summary
 * - `accept.ts`: `acceptConnections`, `serveEach`, `ConnectionLimit`: an
 *   accept loop that one client cannot stop
 * - `io.ts`: `writeAll`, `writeAllWithTimeout`, `readChunks`, `readAll`,
 *   `readWithTimeout`, `withDeadline`: write every byte, read with size and
 *   time limits
 * - `text.ts`: `utf8Encode`, `utf8Decode`, `Utf8StreamDecoder`, `terminalSafe`,
 *   `Utf8Error`, `hexdump`, `quote`, `plural`
 * - `lines.ts` (lesson 05): `readLines`, `LineDecoder`, `LineTooLongError`,
 *   `DEFAULT_MAX_LINE_BYTES`
 * - `frames.ts` (lesson 06): `encodeFrame`, `readFrames`, `FrameDecoder`,
 *   `FrameTooLargeError`, `TruncatedFrameError`, `copyCompleteFrames`
 * - `crc32.ts` (lesson 07): `crc32`
 * - `message.ts` (lesson 07): `encodeMessage`, `readMessages`,
 *   `MessageDecoder`, `ProtocolError`, `MessageType`, `describeHeader`
 * - `connections.ts`, `log.ts` (lesson 08): `IdleTracker` (idle timeouts
 *   without a timer per read), `ThrottledLog` (a log that cannot flood the
 *   terminal)
 * - `load.ts` (lesson 09): `runLoad`, `formatReport`: the load generator
 * - `turns.ts` (lessons 08, 12): `ReadTurns`: reads in turns, so 1,000 busy
 *   clients are served fairly
 * - `rate.ts` (lesson 12): `TokenBucket`: flood control, at most a burst at
 *   once and then a rate per second
 * - `terminal.ts` (lessons 11, 12): `readTerminalLines`: what the user
 *   types, line by line
 * - `process.ts` (lesson 20): `taskArgs`, `closedPort`: start the course's
 *   own programs through their tasks
 *
 * `deno doc lib/mod.ts` lists every export with its documentation, and
 * `deno doc --filter LineDecoder lib/mod.ts` shows one.
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
export * from "./process.ts";
export * from "./rate.ts";
export * from "./signals.ts";
export * from "./terminal.ts";
export * from "./text.ts";
export * from "./turns.ts";
