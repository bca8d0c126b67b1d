// deno-lint-ignore-file no-unused-vars require-await -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 01: accepting one connection, and saying who it is, is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 01`:
 * lesson 01's own tests check your file in the lesson's place.
 *
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

  // TODO(exercise): 2. accept one connection (it is a new socket, not the listener),
  // then print `connection from HOST:PORT` with the client's end of it: its address and
  // the ephemeral port its OS picked. The step-by-step prints it with formatAddr; build
  // the line yourself from the connection's hostname and port instead. 3. Close it.
  // 4. Returning closes the listener (`using`): new connections are refused.
});
