/**
 * An echo server written with Node's `net` module, for `deno task bench-echo`.
 * The same file runs in Node (`node node_net.mjs`) and in Deno (`deno run
 * --allow-net=127.0.0.1 node_net.mjs`), so the bench compares the two
 * runtimes on the same code. `socket.pipe(socket)` echoes with backpressure,
 * and ends our side when the client half-closes.
 *
 * Usage: node_net.mjs [--host HOST] [--port PORT] (default 127.0.0.1, port 0)
 *
 * @module
 */
import net from "node:net";
import process from "node:process";

/** The value after `--name` on the command line, or `fallback`. */
function flag(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const host = flag("host", "127.0.0.1");
const server = net.createServer((socket) => {
  socket.on("error", () => socket.destroy()); // one client's failure ends only its socket
  socket.pipe(socket);
});
server.on("error", (error) => {
  console.error(`could not listen on ${host}: ${error.message}`);
  process.exit(1);
});
server.listen(Number(flag("port", "0")), host, () => {
  console.log(`listening on ${host}:${server.address().port}`);
});
