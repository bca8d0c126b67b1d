// deno-lint-ignore-file no-unused-vars require-await -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 17: telling a stale socket file from a live server is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 17`:
 * lesson 17's own tests check your file in the lesson's place.
 *
 * Lesson 17 server: lesson 05's line service on a Unix socket.
 *
 * The service is lesson 05's, imported, not copied: `serveLines` answers
 * each line with its number and the text reversed. Only the listener is
 * new: `Deno.listen({ transport: "unix", path })` instead of a host and port.
 *
 * The socket is a file, and files outlive programs. A server that is killed
 * leaves its socket file behind, and the next `Deno.listen` on that path
 * fails with "address in use" although nobody is listening. So, when the
 * path is taken, we find out who has it: we connect. A live server answers:
 * we stop and leave its socket alone. "Connection refused" means a stale
 * file: if it is a socket, we remove it and listen. Anything else (a regular
 * file, say) is never removed, and a socket file we may not remove (another
 * user's, in a shared directory) is a one-line error.
 *
 * By default the socket is in a private directory (socket_path.ts): in a
 * directory anyone may write to, such as /tmp, another user could take our
 * path first and receive what our clients send.
 */
import {
  formatAddr,
  LessonError,
  onShutdown,
  parseFlags,
  runMain,
  UsageError,
} from "../../lib/mod.ts";
import { serveLines, SERVER_FLAGS } from "../05-line-framing/server.ts";
import {
  checkPermission,
  checkPrivateDir,
  defaultPath,
  pathFlag,
  privateDir,
  socketPath,
} from "./socket_path.ts";

/** How long a live server may take to accept our test connection. */
const PROBE_TIMEOUT_MS = 2000;

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 17,
      role: "server",
      hostPort: false,
      summary: "Lesson 05's line service on a Unix socket: answers each line with its number " +
        "and the text reversed; /bye closes. Removes a stale socket file, never a live one.",
      flags: {
        path: pathFlag(),
        mode: {
          type: "string",
          description: "set the socket file's permissions, e.g. 600: only this user may connect",
          value: "OCTAL",
        },
        ...SERVER_FLAGS,
      },
    });
    const path = socketPath(flags.path);
    const abstract = path.startsWith("\0"); // @NAME: no file in the file system
    const mode = flags.mode === undefined ? undefined : parseMode(flags.mode);
    // Permissions belong to a file, and an abstract name has none to chmod.
    if (abstract && mode !== undefined) {
      throw new UsageError("--mode sets a socket file's permissions; @NAME has no file");
    }
    checkPermission(flags.path!, path, "server");
    // The default path is in our private directory: make it (mode 700), or check it is ours.
    if (flags.path === defaultPath()) checkPrivateDir(privateDir()!, true);
    const listener = await listenUnix(path, "choose another --path");
    if (mode !== undefined) {
      // Between listen and chmod the file has the default permissions (from
      // the umask): a careful server creates it in a private directory.
      Deno.chmodSync(path, mode);
      console.log(`socket file permissions: ${mode.toString(8).padStart(3, "0")}`);
    }
    console.log(`listening on ${formatAddr(listener.addr)}`);

    // Ctrl-C or SIGTERM: close the listener and remove the socket file, so
    // the next server finds the path free. Deno 2.9 removes the file too, but
    // only once the pending accept has ended, which is after Deno.exit: so we
    // remove it ourselves. An abstract name (@NAME) has no file to remove.
    const stop = () => {
      listener.close();
      if (!abstract) removeIfThere(path);
      console.log(abstract ? "stopped" : `stopped: removed ${flags.path}`);
      Deno.exit(0);
    };
    onShutdown(stop);
    await serveLines(listener, flags);
  });
}

/**
 * `Deno.listen` on a socket path; if the path is taken by a stale socket
 * file (nobody answers on it), removes it and tries once more. `other` is
 * the way to another path that the error messages suggest (the bench has
 * no `--path`, so it passes none).
 */
export async function listenUnix(path: string, other?: string): Promise<Deno.UnixListener> {
  try {
    return Deno.listen({ transport: "unix", path });
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw unixListenError(error, path, other);
  }
  // TODO(exercise): something is at the path: a live server, or a file left behind?
  // Only a connection tells: `await answers(path, other)` is true if a server
  // accepts. Then stop with a LessonError, `unix:PATH is in use by a running
  // server: stop it first` + or(other), and leave its file alone. Otherwise the
  // file is stale, but remove it only if it is a socket (Deno.lstatSync(path)
  // .isSocket; anything else: `PATH exists and is not a socket: not removing it; `
  // + (other ?? "move it away first")). If Deno.removeSync fails: `cannot remove
  // the stale socket file PATH: REASON; ` + (other ?? "remove it first"), where
  // REASON is "permission denied (another user's file?)" for PermissionDenied.
  // Then print `removed stale socket file PATH (no server was listening on it)`.
  try {
    return Deno.listen({ transport: "unix", path });
  } catch (error) {
    // Another server took the path in the moment between: it is live, leave it.
    throw unixListenError(error, path, other);
  }
}

/** True if a server accepts a connection on `path` (then we close it at once). */
async function answers(path: string, other: string | undefined): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const conn = await Promise.race([
      Deno.connect({ transport: "unix", path }),
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), PROBE_TIMEOUT_MS)),
    ]);
    // No answer in time: a server so busy it cannot accept is still a server.
    if (conn === null) return true;
    conn.close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return false; // nobody listens
    if (error instanceof Deno.errors.NotFound) return false; // gone meanwhile
    throw unixListenError(error, path, other);
  } finally {
    clearTimeout(timer);
  }
}

/** A one-line error for a failed listen on socket `path` (lib/net.ts's listenError is for TCP). */
function unixListenError(error: unknown, path: string, other: string | undefined): LessonError {
  const where = formatAddr({ transport: "unix", path });
  if (error instanceof Deno.errors.AddrInUse) {
    return new LessonError(`${where} is in use: stop the other server${or(other)}`);
  }
  if (error instanceof Deno.errors.NotFound) {
    return new LessonError(`cannot listen on ${where}: its directory does not exist`);
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new LessonError(`cannot listen on ${where}: this user may not create files there`);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new LessonError(`cannot listen on ${where}: ${message.replace(/ \(os error \d+\)$/, "")}`);
}

/** ", or choose another --path" for a message, or nothing if there is no other path. */
function or(other: string | undefined): string {
  return other === undefined ? "" : `, or ${other}`;
}

/** `--mode 600` as the number 0o600. */
function parseMode(text: string): number {
  if (!/^[0-7]{3,4}$/.test(text)) {
    throw new UsageError(`--mode must be octal permissions such as 600 or 660, got "${text}"`);
  }
  return parseInt(text, 8);
}

/** Removes the socket file at `path` if it is still there (and we may). */
function removeIfThere(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    const message = error instanceof Error ? error.message : String(error);
    console.error(`could not remove ${path}: ${message.replace(/ \(os error \d+\)$/, "")}`);
  }
}
