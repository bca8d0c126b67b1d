/**
 * Lesson 01 client: connect, look at both ends of the connection, close.
 */
import { connect, formatAddr, parseFlags, runMain } from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 1,
    role: "client",
    summary: "Connects to the lesson 01 server, prints both ends of the connection and exits.",
  });

  // connect: the OS picks a free local (ephemeral) port for our end and
  // performs the TCP handshake with the server. If nobody listens there,
  // this fails with "connection refused".
  const conn = await connect({ host: flags.host, port: flags.port, lesson: 1 });

  // A connection has two ends: remoteAddr is the server, localAddr is us.
  console.log(`connected to ${formatAddr(conn.remoteAddr)} from ${formatAddr(conn.localAddr)}`);

  conn.close();
});
