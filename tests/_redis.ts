/**
 * The helpers of the tests that need `redis-server` (lessons 13 and 20), apart
 * from ./_helpers.ts so that the other lessons' tests do not load lesson 20.
 */
import { type LocalRedis, startRedis } from "../lessons/20-redis-chat/cluster.ts";
import { LessonServer } from "../tools/lesson_process.ts";

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
