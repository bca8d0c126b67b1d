/**
 * Lesson 04 server: what each end of a connection sees.
 *
 * For every connection it replies with one line, "you are HOST:PORT, I am
 * HOST:PORT", then keeps the connection open until the client closes it, so
 * that the learner can watch the connection with `ss -tan` or `netstat -an`.
 */
import {
  closeQuietly,
  describeNetError,
  formatAddr,
  listen,
  maxConnectionsFlag,
  parseFlags,
  peerLog,
  readChunks,
  runMain,
  serveEach,
  utf8Encode,
  writeAll,
} from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 4,
    role: "server",
    summary: "Tells each client its address and port as the server sees them. " +
      "Try --host 0.0.0.0 (all IPv4 addresses), --host ::1 or --port 0.",
    flags: {
      "idle-timeout": {
        type: "number",
        description: "close a client that stays quiet this long",
        default: 600,
        min: 1,
        value: "SECONDS",
      },
      "max-connections": maxConnectionsFlag(500),
    },
  });
  const listener = listen({ host: flags.host, port: flags.port, lesson: 4 });
  // Serve clients concurrently: a client holding its connection open with
  // --hold must not block the others. Lesson 08 explains how. serveEach also
  // survives a failed accept, and turns away clients over --max-connections
  // (every connection costs a file descriptor, and there are only so many).
  await serveEach(listener, (conn) => serve(conn, flags["idle-timeout"] * 1000), {
    maxConnections: flags["max-connections"],
  });
});

async function serve(conn: Deno.TcpConn, idleTimeoutMs: number) {
  // remoteAddr: the client's IP and ephemeral port. localAddr: the address the
  // client reached us on (with --host 0.0.0.0 it is a real address, not 0.0.0.0).
  const you = formatAddr(conn.remoteAddr);
  const me = formatAddr(conn.localAddr);
  peerLog.event(`connection from ${you} to ${me}`);
  try {
    await writeAll(conn, utf8Encode(`you are ${you}, I am ${me}\n`));
    // Wait for the client to close; we expect nothing, so discard what comes.
    for await (const _ of readChunks(conn, { idleTimeoutMs, what: "the client" }));
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    peerLog.event(`connection from ${you} failed: ${reason}`);
  } finally {
    closeQuietly(conn);
    peerLog.event(`closed connection from ${you}`);
  }
}
