/**
 * Lesson 12 server: a chat for many users at once, with names.
 *
 * Every connection is served at the same time (lesson 08), speaking the line
 * protocol of the README. The work is in room.ts, a module a later lesson can
 * import: the room (names to sessions), one session per user, and the
 * handling of one TCP connection (bounded reading, a bounded outgoing queue
 * per user, idle tracking). This file parses the flags, accepts the
 * connections and shuts down gracefully on Ctrl-C. Lesson 13 runs this same
 * server next to its web gateway: it imports `CHAT_FLAGS` and `serveChat`.
 */
import {
  closeQuietly,
  type Flags,
  idleTimeoutFlag,
  IdleTracker,
  listen,
  maxConnectionsFlag,
  onShutdown,
  parseFlags,
  plural,
  runMain,
  serveEach,
} from "../../lib/mod.ts";
import { ThrottledLog } from "../../lib/log.ts";
import { ReadTurns } from "../../lib/turns.ts";
import {
  ChatRoom,
  FLOOD_LIMITS,
  type FloodLimits,
  serveChatConnection,
  type TrackedConnection,
} from "./room.ts";

/** The chat server's own flags (lesson 13 adds its own to these). */
export const CHAT_FLAGS = {
  "max-connections": maxConnectionsFlag(1000),
  "idle-timeout": idleTimeoutFlag(600),
  "max-queue": {
    type: "number",
    description: "the most bytes waiting for one client; a client that lets more pile up " +
      "is too slow and is cut off",
    default: 256 * 1024,
    // Room for the longest `from NAME TEXT` line (4,129 bytes with its LF), and more.
    min: 8192,
    value: "BYTES",
  },
  // Flood control (room.ts, FloodLimits): a token bucket per client.
  "line-burst": {
    type: "number",
    description: "flood control: the most lines a client may send at once; " +
      'more get "error too-fast"',
    default: FLOOD_LIMITS.lines.burst,
    min: 1,
    value: "N",
  },
  "line-rate": {
    type: "number",
    description: "flood control: the lines a second a client may keep sending",
    default: FLOOD_LIMITS.lines.rate,
    min: 0.01,
    integer: false,
    value: "N",
  },
  "name-burst": {
    type: "number",
    description: "flood control: the most /name a client may send at once " +
      "(each new name is announced to everyone)",
    default: FLOOD_LIMITS.names.burst,
    min: 1,
    value: "N",
  },
  "name-rate": {
    type: "number",
    description: "flood control: the /name a second a client may keep sending " +
      "(0.2: one every 5 s)",
    default: FLOOD_LIMITS.names.rate,
    min: 0.001,
    integer: false,
    value: "N",
  },
} as const;

/** The flood control that the `--line-*` and `--name-*` flags ask for. */
export function floodLimits(flags: Flags<typeof CHAT_FLAGS>): FloodLimits {
  return {
    lines: { burst: flags["line-burst"], rate: flags["line-rate"] },
    names: { burst: flags["name-burst"], rate: flags["name-rate"] },
  };
}

/**
 * Serves the chat on `listener` until it is closed (Ctrl-C), then says bye to
 * everyone and waits for it to go out. `log` (by default at most 20 lines a
 * second, so 1,000 users joining at once cannot flood the terminal) gets who
 * joined and left. `room` is a fresh one unless given (lesson 20 passes a
 * room shared through Redis).
 */
export async function serveChat(
  listener: Deno.TcpListener,
  flags: Flags<typeof CHAT_FLAGS>,
  log: ThrottledLog = new ThrottledLog(),
  room: ChatRoom = new ChatRoom((line) => log.event(line)),
): Promise<void> {
  // One timer for every connection (lesson 08): a quiet one is told bye and closed.
  const idle = new IdleTracker<TrackedConnection>({
    idleTimeoutMs: flags["idle-timeout"] * 1000,
    onIdle: ({ session }) => session.end(`idle for ${flags["idle-timeout"]} s`, "bye"),
  });
  const options = {
    maxQueueBytes: flags["max-queue"],
    writeTimeoutMs: 30_000,
    closeGraceMs: 5_000,
    idle,
    flood: floodLimits(flags),
    // With 1,000 users typing at once, plain reads would serve some over and
    // over while others wait seconds (lib/turns.ts; bench/fairness.ts --protocol chat).
    turns: new ReadTurns(),
  };

  const open = new Set<Promise<void>>();
  await serveEach(listener, (conn) => {
    const serving = serveChatConnection(conn, room, options);
    open.add(serving);
    return serving.finally(() => open.delete(serving));
  }, { maxConnections: flags["max-connections"], log: (line) => log.event(line) });

  log.flush();
  console.log(`shutting down: ${plural(room.size, "user")} connected`);
  // Every connection, named or not: one that never sent /name would
  // otherwise keep us waiting for its idle timeout.
  for (const { session } of idle) session.end("server shutting down", "bye");
  await Promise.all(open); // each closes within closeGraceMs
  idle.stop();
  options.turns.stop();
  log.flush();
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 12,
      role: "server",
      summary: "A chat server for many users: /name, /users, /to, /chat, /bye (see the README).",
      flags: CHAT_FLAGS,
    });
    const listener = listen({ host: flags.host, port: flags.port, lesson: 12 });
    // Ctrl-C or SIGTERM: stop accepting, say bye to everyone, let it go out.
    // lib's onShutdown runs this once: under `deno task`, one Ctrl-C arrives
    // twice (the terminal and the task), and the copy must not kill us.
    onShutdown(() => closeQuietly(listener));
    await serveChat(listener, flags);
  });
}
