/**
 * Lesson 12's chat server with ReadTurns (lib/turns.ts) in front of every
 * connection's reads, for bench/fairness.ts (`lesson12-turns`): is lesson 12
 * fairer with them? Lesson 12 itself is unchanged; this wraps the reads of
 * the connections its listener accepts.
 *
 * Usage: deno run --allow-net=127.0.0.1 chat_turns.ts (lesson 12's flags)
 *
 * @module
 */
import { READ_TURNS, ReadTurns } from "../../lib/turns.ts";
import { CHAT_FLAGS, serveChat } from "../../lessons/12-multi-user-chat/server.ts";
import { listen, parseFlags } from "../../lib/mod.ts";

const flags = parseFlags(Deno.args, { lesson: 12, role: "server", summary: "", flags: CHAT_FLAGS });
const listener = listen({ host: flags.host, port: flags.port, lesson: 12 });
const turns = new ReadTurns(READ_TURNS);
const accept = listener.accept.bind(listener);
listener.accept = async () => {
  const conn = await accept();
  const read = conn.read.bind(conn);
  conn.read = (buffer) => turns.read({ read }, buffer);
  return conn;
};
await serveChat(listener, flags);
