/**
 * Lesson 17: the socket path, shared by the server and the client.
 *
 * A Unix socket has no host and no port: its address is a path in the file
 * system, and the socket is a file there (`ls -l` shows an `s`). Two limits
 * come with that: the path must fit in the kernel's `sun_path` field (108
 * bytes on Linux, 104 on macOS, one of them for the final NUL), and Deno's
 * permissions name the exact path. `@NAME` asks for a Linux abstract name:
 * no file at all (see the README).
 *
 * The default path is in a directory only this user may enter: in a shared
 * one such as /tmp, another user could create the path first (a squatter
 * that our client would then tell its secrets), or leave a socket file
 * there that we may not remove. `$XDG_RUNTIME_DIR` is such a directory
 * (made by the login session, mode 700); without it we make our own in the
 * home directory, mode 700, and check it each time (see {@linkcode checkPrivateDir}).
 */
import { LessonError, UsageError, utf8Encode } from "../../lib/mod.ts";

/** The file name of the lesson's socket in the private directory. */
export const SOCKET_NAME = "lesson17.sock";

/** The value of environment variable `name` if this program may read it and it is not empty. */
function env(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return;
  return Deno.env.get(name) || undefined;
}

/**
 * The private directory of the default path: `$XDG_RUNTIME_DIR/deno-socket-lessons`,
 * or `$HOME/.deno-socket-lessons` without it; undefined if neither variable
 * is set (or this program may not read them: then it needs `--path`).
 */
export function privateDir(): string | undefined {
  const runtime = env("XDG_RUNTIME_DIR");
  if (runtime) return `${runtime}/deno-socket-lessons`;
  const home = env("HOME");
  return home ? `${home}/.deno-socket-lessons` : undefined;
}

/** The default socket path (`name` in {@linkcode privateDir}), if there is one. */
export function defaultPath(name = SOCKET_NAME): string | undefined {
  const dir = privateDir();
  return dir === undefined ? undefined : `${dir}/${name}`;
}

/** The `--path PATH` flag of both programs. */
export function pathFlag() {
  return {
    type: "string",
    description: "the socket file (@NAME: a Linux abstract name, no file)",
    default: defaultPath(),
    value: "PATH",
  } as const;
}

/** The longest path the kernel takes, in bytes: sun_path less its final NUL. */
export const MAX_PATH_BYTES = Deno.build.os === "linux" ? 107 : 103;

/**
 * Checks `--path` and returns what to give `Deno.listen`/`Deno.connect`:
 * the path itself, or for `@NAME` the abstract name `\0NAME`.
 */
export function socketPath(flag: string | undefined): string {
  if (flag === undefined) {
    throw new UsageError(
      "no --path, and no default: neither XDG_RUNTIME_DIR nor HOME is set (or readable)",
    );
  }
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
  return `the task may only use ${
    defaultPath() ?? "its default path"
  }; for another path run: ${run}`;
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

/**
 * Why `dir` is not a private directory of this user, or undefined if it is:
 * a directory (not a symbolic link: `info` comes from `lstat`, which does
 * not follow one), owned by `uid`, that nobody else may enter or change
 * (no group or other permission bits).
 */
export function notPrivate(info: Deno.FileInfo, uid: number): string | undefined {
  if (info.isSymlink) return "it is a symbolic link (it could lead anywhere)";
  if (!info.isDirectory) return "it is not a directory";
  if (info.uid !== uid) return `it belongs to another user (uid ${info.uid}, not ${uid})`;
  const mode = (info.mode ?? 0) & 0o777;
  if (mode & 0o077) {
    return `other users may use it (mode ${mode.toString(8).padStart(3, "0")}, not 700)`;
  }
  return undefined;
}

/**
 * Makes sure `dir` is this user's private directory: creates it (mode 700)
 * if `create` and it does not exist, then checks it with `lstat`. Fails with
 * one line if it is not private: nobody else may create, replace or reach
 * the socket file inside it. Returns false if it does not exist (and
 * `create` is false: the client, which has no server to find there then).
 */
export function checkPrivateDir(dir: string, create: boolean): boolean {
  if (create) {
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        const parent = dir.slice(0, dir.lastIndexOf("/")) || "/";
        throw new LessonError(`cannot create ${dir}: ${parent} does not exist; choose a --path`);
      }
      if (!(error instanceof Deno.errors.AlreadyExists)) {
        const message = error instanceof Error ? error.message : String(error);
        throw new LessonError(`cannot create ${dir}: ${message.replace(/ \(os error \d+\)$/, "")}`);
      }
    }
  }
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !create) return false;
    throw error;
  }
  const why = notPrivate(info, Deno.uid() ?? -1);
  if (why) {
    const fix = why.startsWith("other users") ? `chmod 700 ${dir}` : "remove it";
    throw new LessonError(
      `refusing to use ${dir}: ${why}, so another user could squat or swap the socket file: ` +
        `${fix}, or choose another --path`,
    );
  }
  return true;
}
