// deno-lint-ignore-file no-unused-vars prefer-const require-await -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 02: the echo loop is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 02`:
 * lesson 02's own tests check your file in the lesson's place.
 *
 * Lesson 02 server: an iterative echo server.
 *
 * It serves one client at a time: it reads whatever arrives, writes the same
 * bytes back, and when the client half-closes (EOF) it closes the connection
 * and accepts the next client. A second client waits until the first is done
 * (lesson 08 fixes that). Because everyone waits for the client being served,
 * that client must not be able to hold the server for ever: a client that
 * stops sending, or stops reading our echo, is closed after --idle-timeout.
 */
import {
  acceptConnections,
  closeQuietly,
  describeNetError,
  formatAddr,
  idleTimeoutFlag,
  listen,
  parseFlags,
  peerLog,
  readChunks,
  runMain,
  ThrottledLog,
  writeAllWithTimeout,
} from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 2,
    role: "server",
    summary: "Echoes every byte back to each client, one client at a time.",
    flags: {
      "idle-timeout": idleTimeoutFlag(60),
    },
  });
  const listener = listen({ host: flags.host, port: flags.port, lesson: 2 });

  // The accept loop: one client at a time, forever (Ctrl-C stops the server).
  // acceptConnections, unlike `for await (const conn of listener)`, does not
  // stop the server when one accept fails (a client that reset its
  // connection before we took it): it logs it and takes the next one.
  // At most 20 notes a second (lib/log.ts): a flood of resets cannot flood the log.
  const acceptLog = new ThrottledLog();
  const onError = (line: string) => acceptLog.event(line);
  for await (const conn of acceptConnections(listener, { onError })) {
    // `await` here means the next client is not accepted until this one is done.
    await echo(conn, flags["idle-timeout"] * 1000);
  }
});

async function echo(conn: Deno.TcpConn, idleTimeoutMs: number) {
  const peer = formatAddr(conn.remoteAddr);
  peerLog.event(`connection from ${peer}`);
  let echoed = 0;
  try {
    // TODO(exercise): read whatever arrives until EOF and write every byte of it
    // back, adding each chunk's length to `echoed` (readChunks and
    // writeAllWithTimeout, with idleTimeoutMs, are imported for you).
    peerLog.event(`echoed ${echoed} bytes to ${peer}`);
  } catch (error) {
    // A misbehaving client ends its own connection, never the server.
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    peerLog.event(`connection from ${peer} failed after ${echoed} bytes: ${reason}`);
  } finally {
    closeQuietly(conn);
    peerLog.event(`closed connection from ${peer}`);
  }
}
