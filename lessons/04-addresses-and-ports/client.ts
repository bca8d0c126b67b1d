/**
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

    // The server's one-line answer, with a deadline for all of it (a server
    // that sends one byte every few seconds must not keep us here for ever).
    const lines = readLines(conn, {
      maxLineBytes: 1024,
      idleTimeoutMs: timeoutMs,
      what: "the server",
      requireNewline: true, // an answer without its LF was cut short
    });
    const line = await withDeadline(conn, timeoutMs, "the server's answer", async () => {
      const { value, done } = await lines.next();
      if (done) throw new LessonError("the server closed the connection before answering");
      return value;
    });
    console.log(`${prefix}server says: ${terminalSafe(line)}`);

    if (flags.hold > 0) {
      console.log(
        `${prefix}holding the connection open for ${flags.hold} s: ` +
          `look for port ${(conn.localAddr as Deno.NetAddr).port} with: ss -tan`,
      );
      await new Promise((resolve) => setTimeout(resolve, flags.hold * 1000));
    }
    // Say goodbye in order: half-close, then wait for the server's EOF (it
    // closes once it sees ours). We sent the first FIN, so it is our side of
    // the connection that stays in TIME_WAIT for a while.
    await withDeadline(conn, timeoutMs, "the server to close", async () => {
      await conn.closeWrite();
      await lines.next();
    });
    // Leaving the loop body closes `conn` (`using`).
  }
});
