/**
 * Starting the course's own programs from a program: the `deno` arguments of
 * a task in `deno.json` ({@linkcode taskArgs}), and a loopback port where
 * nothing listens ({@linkcode closedPort}).
 *
 * Lesson 20's cluster starts lesson 20 servers and a `redis-server` this way,
 * and the tests' harness (tools/lesson_process.ts) does too: a program started
 * through its task runs with exactly the permissions a learner's
 * `deno task` gives it.
 *
 * @module
 */

/** The repository's root, where `deno.json` is. */
const ROOT = new URL("../", import.meta.url);

let tasksCache: Record<string, string> | undefined;

/**
 * The `deno` arguments of a task in `deno.json`, e.g.
 * `["run", "--no-prompt", "--allow-net=…", "lessons/…/server.ts"]`: run them
 * with `new Deno.Command("deno", { args, cwd: ROOT })`. `$NAME` and `${NAME}`
 * are replaced as `deno task` does, from `env` or else this process's
 * environment (unset: empty): lesson 17's permissions name `$XDG_RUNTIME_DIR`
 * and `$HOME`. Throws for a task that does not exist, or that is not one
 * plain `deno ...` command. Reading `deno.json` needs `--allow-read=deno.json`.
 *
 * @example
 * ```ts ignore
 * import { taskArgs } from "./process.ts";
 * const args = [...taskArgs("lesson20-server"), "--port", "0"];
 * const child = new Deno.Command("deno", { args, stdout: "piped" }).spawn();
 * ```
 */
export function taskArgs(task: string, env: Record<string, string> = {}): string[] {
  if (!tasksCache) {
    const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
    tasksCache = {};
    for (const [name, value] of Object.entries(config.tasks as Record<string, unknown>)) {
      tasksCache[name] = typeof value === "string" ? value : (value as { command: string }).command;
    }
  }
  const command = tasksCache[task];
  if (command === undefined) throw new Error(`deno.json has no task ${task}`);
  const words = command.split(/\s+/);
  if (words[0] !== "deno" || words.some((w) => /[|&;<>`"']|\$[^A-Za-z_{]/.test(w))) {
    throw new Error(`task ${task} is not a plain "deno ..." command: ${command}`);
  }
  return words.slice(1).map((word) =>
    word.replace(
      /\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))/g,
      (_, braced, plain) => env[braced ?? plain] ?? Deno.env.get(braced ?? plain) ?? "",
    )
  );
}

/**
 * A loopback port with nothing listening on it: the system picks a free one
 * and we let it go at once. Good for a "connection refused" check, or for a
 * program that must be told its port in advance (`redis-server --port`).
 * Another program could take it in between; on a test machine that is rare.
 *
 * @example
 * ```ts
 * import { closedPort } from "./process.ts";
 * const port = closedPort(); // e.g. 40123
 * await Deno.connect({ hostname: "127.0.0.1", port }).catch((error) => error.name);
 * // "ConnectionRefused"
 * ```
 */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
