/**
 * The server side of `deno task lesson17-bench`: lesson 08's echo server,
 * twice in one process, on a loopback TCP port and on a Unix socket. Same
 * code, same event loop: the only difference the bench sees is the transport.
 *
 * Usage: bench_server.ts PATH (prints two `listening on` lines; stdin's end stops it)
 */
import { formatAddr, runMain, UsageError } from "../../lib/mod.ts";
import { echoServer } from "../08-many-clients/server.ts";
import { listenUnix } from "./server.ts";

// runMain: a path in use or a file in the way is one line on stderr, not a stack trace.
await runMain(async () => {
  if (Deno.args.length !== 1) throw new UsageError("usage: bench_server.ts PATH");
  const options = { maxConnections: 100, idleSeconds: 60, quiet: true };
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // No `other` path to suggest: the bench has no --path flag.
  const unix = await listenUnix(Deno.args[0]);
  const servers = [echoServer(tcp, options), echoServer(unix, options)];
  console.log(`listening on ${formatAddr(tcp.addr)}`);
  console.log(`listening on ${formatAddr(unix.addr)}`);
  // The bench closes our stdin when it is done (or dies): stop both, which closes the listeners.
  await new Response(Deno.stdin.readable).arrayBuffer();
  await Promise.all(servers.map((server) => server.stop()));
});
