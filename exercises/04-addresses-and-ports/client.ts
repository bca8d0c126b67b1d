// deno-lint-ignore-file no-unused-vars -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 04: reading the server's answer and saying goodbye is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 04`:
 * lesson 04's own tests check your file in the lesson's place.
 *
 * Lesson 04 client: print both ends of a connection, as this side sees them
 * and as the server sees them. `--count N` opens N connections one after the
 * other (watch the ephemeral port change); `--hold SECONDS` keeps each one
 * open so you can find it with `ss -tan`.
 */
import {
  connect,
  formatAddr,
  LessonError,
  parseFlags,
  readLines,
  runMain,
  terminalSafe,
  timeoutFlag,
  withDeadline,
} from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 4,
    role: "client",
    summary: "Connects and prints the local and remote address of the connection, " +
      "and what the server says it sees.",
    flags: {
      count: {
        type: "number",
        description: "how many connections, one after the other",
        default: 1,
        min: 1,
        max: 1000,
        value: "N",
      },
      hold: {
        type: "number",
        description: "keep each connection open this many seconds before closing it",
        default: 0,
        max: 3600,
        integer: false,
        value: "SECONDS",
      },
      timeout: timeoutFlag(10),
    },
  });
  const timeoutMs = flags.timeout * 1000;

  for (let i = 1; i <= flags.count; i++) {
    using conn = await connect({ host: flags.host, port: flags.port, lesson: 4 });
    const prefix = flags.count > 1 ? `#${i} ` : "";
    // Our end first: the OS chose this port (an "ephemeral" port) for us.
    console.log(
      `${prefix}local ${formatAddr(conn.localAddr)} -> remote ${formatAddr(conn.remoteAddr)}`,
    );

    // TODO(exercise): the rest of one connection's turn.
    // - Read the server's one-line answer: readLines(conn, { maxLineBytes: 1024,
    //   idleTimeoutMs: timeoutMs, what: "the server", requireNewline: true }), and take its
    //   first line inside withDeadline(conn, timeoutMs, "the server's answer", ...): no line
    //   at all is `the server closed the connection before answering` (a LessonError).
    // - Print `${prefix}server says: LINE`, the line through terminalSafe.
    // - With --hold, print `${prefix}holding the connection open for ${flags.hold} s: look
    //   for port LOCALPORT with: ss -tan`, then wait that long.
    // - Say goodbye, within withDeadline(conn, timeoutMs, "the server to close", ...):
    //   conn.closeWrite(), then wait for the server's EOF (the next "line").
    // Traps: reading until EOF as in lesson 03 (this server keeps the connection open);
    // a deadline per read only (a server that sends a byte every few seconds never
    // trips it); printing the server's text raw.
    // Leaving the loop body closes `conn` (`using`).
  }
});
