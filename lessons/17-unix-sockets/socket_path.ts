/**
 * Lesson 17: the socket path, shared by the server and the client.
 *
 * A Unix socket has no host and no port: its address is a path in the file
 * system, and the socket is a file there (`ls -l` shows an `s`). Two limits
 * come with that: the path must fit in the kernel's `sun_path` field (108
 * bytes on Linux, 104 on macOS, one of them for the final NUL), and Deno's
 * permissions name the exact path. `@NAME` asks for a Linux abstract name:
 * no file at all (see the README).
 */
import { LessonError, UsageError, utf8Encode } from "../../lib/mod.ts";

/** Where the server listens and the client connects unless `--path` says otherwise. */
export const DEFAULT_PATH = "/tmp/deno-socket-lessons-17.sock";

/** The `--path PATH` flag of both programs. */
export const PATH_FLAG = {
  type: "string",
  description: "the socket file (@NAME: a Linux abstract name, no file)",
  default: DEFAULT_PATH,
  value: "PATH",
} as const;

/** The longest path the kernel takes, in bytes: sun_path less its final NUL. */
export const MAX_PATH_BYTES = Deno.build.os === "linux" ? 107 : 103;

/**
 * Checks `--path` and returns what to give `Deno.listen`/`Deno.connect`:
 * the path itself, or for `@NAME` the abstract name `\0NAME`.
 */
export function socketPath(flag: string): string {
  const abstract = flag.startsWith("@");
  if (abstract && Deno.build.os !== "linux") {
    throw new UsageError(`--path ${flag}: abstract names (@NAME) exist only on Linux`);
  }
  const path = abstract ? "\0" + flag.slice(1) : flag;
  const bytes = utf8Encode(path).length;
  if (bytes > MAX_PATH_BYTES) {
    throw new UsageError(
      `--path is ${bytes} bytes long; a socket path may have at most ${MAX_PATH_BYTES} ` +
        "(the kernel's sun_path): use a shorter one",
    );
  }
  return path;
}

/** The one-line hint for a path the task's permissions do not cover. */
export function permissionHint(flag: string, program: "server" | "client"): string {
  const run = flag.startsWith("@")
    ? `deno run --allow-net lessons/17-unix-sockets/${program}.ts --path ${flag}`
    : `deno run --allow-read=${flag} --allow-write=${flag} --allow-net=unix:${flag} ` +
      `lessons/17-unix-sockets/${program}.ts --path ${flag}`;
  return `the task may only use ${DEFAULT_PATH}; for another path run: ${run}`;
}

/**
 * Fails with one line if this program's Deno permissions do not cover the
 * socket. (Deno asks for read, write and net `unix:PATH` for a socket file,
 * and for plain `--allow-net` for an abstract name.)
 */
export function checkPermission(flag: string, path: string, program: "server" | "client"): void {
  const granted = path.startsWith("\0")
    ? Deno.permissions.querySync({ name: "net" }).state === "granted"
    : Deno.permissions.querySync({ name: "read", path }).state === "granted" &&
      Deno.permissions.querySync({ name: "write", path }).state === "granted";
  if (!granted) {
    throw new LessonError(`not permitted to use ${flag}: ${permissionHint(flag, program)}`);
  }
}
