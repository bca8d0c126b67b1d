/**
 * Lesson 12's chat, but each connection reads with plain `conn.read` instead
 * of in turns (lib/turns.ts), for bench/fairness.ts (`lesson12-plain`): what
 * lesson 12 was before it read in turns. The same room and connection code
 * (room.ts); only `turns` is left out of the options.
 *
 * Usage: deno run --allow-net=127.0.0.1 chat_plain.ts (lesson 12's flags)
 *
 * @module
 */
import { CHAT_FLAGS, floodLimits } from "../../lessons/12-multi-user-chat/server.ts";
import {
  ChatRoom,
  serveChatConnection,
  type TrackedConnection,
} from "../../lessons/12-multi-user-chat/room.ts";
import { IdleTracker, listen, parseFlags, serveEach } from "../../lib/mod.ts";

const flags = parseFlags(Deno.args, { lesson: 12, role: "server", summary: "", flags: CHAT_FLAGS });
const listener = listen({ host: flags.host, port: flags.port, lesson: 12 });
const room = new ChatRoom(() => {});
const idle = new IdleTracker<TrackedConnection>({
  idleTimeoutMs: flags["idle-timeout"] * 1000,
  onIdle: () => {},
});
const options = {
  maxQueueBytes: flags["max-queue"],
  writeTimeoutMs: 30_000,
  closeGraceMs: 5_000,
  flood: floodLimits(flags),
};
await serveEach(listener, (conn) => serveChatConnection(conn, room, { ...options, idle }), {
  maxConnections: flags["max-connections"],
});
