/**
 * Ctrl-C as a terminal sends it: to the whole foreground process group,
 * that is to `deno task` AND the server it started (which then gets the
 * signal twice: from the terminal, and passed on by `deno task`).
 *
 * `pressCtrlC` starts `deno task TASK --port 0` in a process group of its
 * own (`setsid`), waits for `listening on`, runs `exchange`, then sends
 * SIGINT to the group with the `kill` binary (`kill -INT -- -PGID`). Every
 * wait has a time limit, and the group is killed with SIGKILL at the end
 * whatever happened.
 */

const ROOT = new URL("../", import.meta.url);

/** What the task printed and how it ended. */
export interface GroupResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Sends `signal` to every process of group `pgid`; false if there was none. */
async function killGroup(pgid: number, signal: "INT" | "KILL"): Promise<boolean> {
  const { success } = await new Deno.Command("kill", {
    args: [`-${signal}`, "--", `-${pgid}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return success;
}

/**
 * Runs `deno task TASK --port 0 ...args` in its own process group, calls
 * `exchange(port)` once it listens, then presses Ctrl-C (a group SIGINT).
 */
export async function pressCtrlC(
  task: string,
  args: string[],
  exchange: (port: number) => Promise<void>,
  timeoutMs = 15_000,
): Promise<GroupResult> {
  // setsid execs deno in a new session (and group) whose id is its pid.
  const child = new Deno.Command("setsid", {
    args: ["deno", "task", "-q", task, "--port", "0", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let stdout = "";
  let stderr = "";
  const listening = Promise.withResolvers<number>();
  const reading = Promise.all([
    (async () => {
      for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
        stdout += text;
        const port = stdout.match(/^listening on .*:(\d+)$/m)?.[1];
        if (port) listening.resolve(Number(port));
      }
    })(),
    (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
    })(),
  ]);
  const timer = setTimeout(() => {
    listening.reject(new Error(`${task} did not start or stop in time: ${stdout} ${stderr}`));
    killGroup(child.pid, "KILL");
  }, timeoutMs);
  try {
    const port = await listening.promise;
    await exchange(port);
    await killGroup(child.pid, "INT");
    const status = await child.status;
    await reading;
    return { code: status.code, stdout, stderr };
  } finally {
    clearTimeout(timer);
    await killGroup(child.pid, "KILL"); // whatever is left of the group (usually nothing)
    await child.status;
    await reading.catch(() => {});
  }
}
