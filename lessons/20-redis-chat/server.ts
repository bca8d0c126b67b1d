/**
 * Lesson 20 server: lesson 12's chat server, sharing its users with other
 * servers through Redis.
 *
 * The chat is lesson 12's, imported: the same protocol, the same limits, the
 * same shutdown (`serveChat`). Only the room is different: a `SharedRoom`
 * (shared_room.ts) claims names in Redis, publishes `joined` / `left`, and
 * sends messages for users on other servers through Redis pub/sub. Start two
 * of these on two ports with the same `--redis`, and they are one chat.
 */
import {
  closeQuietly,
  listen,
  onShutdown,
  parseFlags,
  runMain,
  ThrottledLog,
  UsageError,
} from "../../lib/mod.ts";
import { CHAT_FLAGS, serveChat } from "../12-multi-user-chat/server.ts";
import { SharedRoom } from "./shared_room.ts";

/** Lesson 20's flags: lesson 12's and where Redis is. */
export const SHARED_CHAT_FLAGS = {
  ...CHAT_FLAGS,
  redis: {
    type: "string",
    description: "the Redis server all chat servers share",
    default: "redis://127.0.0.1:6379",
    value: "URL",
  },
  expiry: {
    type: "number",
    description: "a name lives this long in Redis unless its server refreshes it (every third " +
      "of it); a server that dies loses its users after at most 4/3 of it",
    default: 15,
    min: 1,
    max: 20,
    integer: false,
    value: "SECONDS",
  },
} as const;

/**
 * Throws a {@linkcode UsageError} unless `text` is a Redis URL node-redis can
 * use: `redis://` or `rediss://` (TLS), a host, and a port from 1 to 65535 if
 * one is given (the default is 6379). `new URL` rejects what cannot be parsed
 * (`redis://[bad`, a port over 65535); the rest we check ourselves.
 */
export function checkRedisUrl(text: string): void {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch { /* not a URL at all: said below */ }
  const port = url?.port ? Number(url.port) : 6379;
  if (
    url === undefined || !/^rediss?:$/.test(url.protocol) || url.hostname === "" ||
    port < 1 || port > 65535
  ) {
    throw new UsageError(`--redis must be a URL such as redis://127.0.0.1:6379, got "${text}"`);
  }
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 20,
      role: "server",
      summary: "Lesson 12's chat server, sharing users and messages with other servers " +
        "through Redis (see the README).",
      flags: SHARED_CHAT_FLAGS,
      epilog: "Example: deno task lesson20-server --port 65421 --redis redis://127.0.0.1:6379",
    });
    checkRedisUrl(flags.redis); // before listening: a bad URL is a usage error, not a crash
    const log = new ThrottledLog();
    // What the room says while it starts is printed after `listening on`, the
    // first line of every lesson server (the tests and the cluster wait for it).
    let early: string[] | undefined = [];
    // Unique per process: a server restarted on the same port is a new server.
    const random = crypto.getRandomValues(new Uint8Array(3));
    const serverId = `${flags.port}-${
      [...random].map((b) => b.toString(16).padStart(2, "0")).join("")
    }`;
    const room = new SharedRoom({
      url: flags.redis,
      serverId,
      expiryMs: flags.expiry * 1000,
      maxQueueBytes: flags["max-queue"],
      log: (line) => log.event(line),
      status: (line) => {
        if (early) return void early.push(line);
        log.flush(); // what happened before comes first
        console.log(line);
      },
    });
    // Redis first, then listen (at most about 2 s later, connected or not):
    // a user who came in before the room is connected would get a name
    // checked on this server only, and lose it when Redis answers.
    await room.start();
    let listener: Deno.TcpListener;
    try {
      listener = listen({ host: flags.host, port: flags.port, lesson: 20 });
    } catch (error) {
      await room.close();
      throw error;
    }
    for (const line of early) console.log(line);
    early = undefined;
    // Ctrl-C or SIGTERM: stop accepting, say bye to everyone, let it go out
    // (lesson 12's). A second signal closes nothing more: in a terminal, Ctrl-C
    // reaches every process of the group, and lesson20-cluster then also stops
    // each of its programs by its id.
    onShutdown(() => closeQuietly(listener));
    await serveChat(listener, flags, log, room);
    await room.close(); // the last `left`s reach the other servers
  });
}
