/**
 * Lesson 19's proxy, but each direction reads with plain `conn.read` instead
 * of in turns (lib/turns.ts), for bench/fairness.ts (`lesson19-plain`): what
 * lesson 19 was before it read in turns. The same `serveProxy`; only `turns`
 * is left out of the options. Always quiet, no --split/--delay/--rewrite.
 *
 * Usage: deno run --allow-net=127.0.0.1 proxy_plain.ts --to HOST:PORT (lesson 19's flags)
 *
 * @module
 */
import { PROXY_FLAGS, serveProxy } from "../../lessons/19-tracing-proxy/server.ts";
import { listen, parseFlags, parseHostPort } from "../../lib/mod.ts";

const flags = parseFlags(Deno.args, {
  lesson: 19,
  role: "server",
  summary: "",
  flags: PROXY_FLAGS,
});
const listener = listen({ host: flags.host, port: flags.port, lesson: 19 });
await serveProxy(listener, {
  upstream: parseHostPort(flags.to, "--to"),
  quiet: true,
  delayMs: 0,
  rewrites: [],
  maxDump: flags["max-dump"],
  idleTimeoutMs: flags["idle-timeout"] * 1000,
}, flags["max-connections"]);
