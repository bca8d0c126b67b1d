/**
 * Lesson 01 server: the whole life of a listening socket, once.
 *
 * listen → accept one connection → print who it is → close it → stop.
 */
import { formatAddr, listen, parseFlags, runMain } from "../../lib/mod.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 1,
    role: "server",
    summary: "Accepts one connection, prints the client's address, closes it and exits.",
  });

  // 1. listen: ask the OS for a socket bound to HOST:PORT that accepts
  //    connections. `listen` prints "listening on HOST:PORT" once it has one.
  //    `using` closes the listener when this function ends.
  using listener = listen({ host: flags.host, port: flags.port, lesson: 1 });

  // 2. accept: wait until a client connects. The result is a *new* socket for
  //    this one conversation; the listener itself only ever accepts.
  const conn = await listener.accept();

  // The client's address: its IP and the ephemeral port its OS picked for it.
  console.log(`connection from ${formatAddr(conn.remoteAddr)}`);

  // 3. close: end the conversation; the client sees end of stream (EOF).
  conn.close();
  // 4. Returning closes the listener (`using`): new connections are refused.
});
