/** Small helpers shared by the lesson tests. */
import net from "node:net";
import { readAll, readWithTimeout } from "../lib/io.ts";
import { closeQuietly } from "../lib/net.ts";
import { type LocalRedis, startRedis } from "../lessons/20-redis-chat/cluster.ts";
import { LessonServer } from "../tools/lesson_process.ts";

export { randomBytes } from "../lib/text.ts";
export { closedPort, LessonServer, runTask } from "../tools/lesson_process.ts";

/** Connects a raw test socket to a server on loopback. */
export function rawConnect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

/** Reads until EOF (with a time limit), for raw test sockets. */
export function readToEnd(conn: Deno.Conn, timeoutMs = 10_000): Promise<Uint8Array> {
  return readAll(conn, { maxBytes: 64 * 1024 * 1024, idleTimeoutMs: timeoutMs });
}

/** Reads exactly `n` bytes or fails (EOF or time limit). */
export async function readExactly(
  conn: Deno.Conn,
  n: number,
  timeoutMs = 10_000,
): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const count = await readWithTimeout(conn, out.subarray(got), timeoutMs, "the server");
    if (count === null) throw new Error(`EOF after ${got} of ${n} bytes`);
    got += count;
  }
  return out;
}

/** Closes a raw socket, ignoring "already closed". */
export function closeRaw(conn: Deno.Conn): void {
  closeQuietly(conn);
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
export const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** Whole, one byte at a time, and in two pieces at every split point. */
export function* chunkings(bytes: Uint8Array): Generator<[string, Uint8Array[]]> {
  yield ["whole", [bytes]];
  yield ["byte by byte", Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))];
  for (let i = 0; i <= bytes.length; i++) {
    yield [`split at ${i}`, [bytes.subarray(0, i), bytes.subarray(i)]];
  }
}

/** Cuts `bytes` at the given positions (modulo its length + 1). */
export function cut(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  return pieces;
}

/** Connects and resets at once (SO_LINGER 0), as a client that gave up would. */
export function resetConnections(port: number, count: number): Promise<void> {
  let done = 0;
  return new Promise((resolve) => {
    for (let i = 0; i < count; i++) {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.resetAndDestroy();
        if (++done === count) resolve();
      });
      socket.on("error", () => {
        if (++done === count) resolve();
      });
    }
  });
}

let redisInstalled: Promise<boolean> | undefined;

/**
 * True if the tests of `what` that need `redis-server` are to be skipped: it
 * is not installed, and this is not CI (with CI=true they must run, and fail
 * without it). Prints a note when they are skipped.
 */
export async function skipWithoutRedis(what: string): Promise<boolean> {
  redisInstalled ??= (async () => {
    try {
      const command = new Deno.Command("redis-server", {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      });
      return (await command.output()).success;
    } catch { // not installed: spawning it throws NotFound
      return false;
    }
  })();
  const skip = !await redisInstalled && Deno.env.get("CI") !== "true";
  if (skip) {
    console.log(
      `${what} skipped: redis-server is not installed ` +
        "(apt-get install redis-server on Debian/Ubuntu)",
    );
  }
  return skip;
}

/**
 * A `redis-server` of its own (a free loopback port, nothing saved to disk)
 * and lesson 20 servers on it, for one test; `await using` stops every one,
 * by its process id, whatever happens.
 */
export class RedisChatServers implements AsyncDisposable {
  redis!: LocalRedis;
  servers: LessonServer[] = [];

  /** Starts Redis and `servers` lesson 20 servers (each with `args`). */
  static async start<T extends RedisChatServers>(
    this: new () => T,
    servers: number,
    args: string[] = [],
  ): Promise<T> {
    const cluster = new this();
    cluster.redis = await startRedis();
    try {
      for (let i = 0; i < servers; i++) await cluster.addServer(args);
    } catch (error) {
      await cluster[Symbol.asyncDispose]();
      throw error;
    }
    return cluster;
  }

  /** One more lesson 20 server, once it has connected to Redis. */
  async addServer(args: string[] = []): Promise<LessonServer> {
    const server = await LessonServer.start("lesson20-server", [
      "--redis",
      this.redis.url,
      ...args,
    ]);
    this.servers.push(server);
    if (!await server.waitForLine(/^redis: connected to /)) {
      throw new Error(`lesson20-server did not connect to Redis:\n${server.lines.join("\n")}`);
    }
    return server;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop("SIGKILL")));
    await this.redis?.process.stop("SIGKILL");
  }
}
