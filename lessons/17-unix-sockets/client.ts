/**
 * Lesson 17 client: lesson 05's client over a Unix socket.
 *
 * Everything after the connection is lesson 05's `talk`: send the lines
 * (one write each, `--split` or `--burst`), print the answers. Only the
 * connection is new: `connectUnix` (lib/net.ts) opens the socket file at
 * `--path`, and says in one line whether the file is missing, stale (no
 * server on it) or closed to this user. The default path is in a private
 * directory (socket_path.ts), and the client checks that it still is before
 * it sends a byte: a socket someone else created would hear our lines.
 */
import { connectUnix, parseFlags, runMain } from "../../lib/mod.ts";
import { CLIENT_FLAGS, talk } from "../05-line-framing/client.ts";
import {
  checkPermission,
  checkPrivateDir,
  defaultPath,
  pathFlag,
  privateDir,
  socketPath,
} from "./socket_path.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 17,
    role: "client",
    hostPort: false,
    summary: "Sends lines to the lesson 17 server over a Unix socket and prints each answer " +
      "line. Lines come from --message (repeatable) or standard input.",
    flags: { path: pathFlag(), ...CLIENT_FLAGS },
  });
  const path = socketPath(flags.path);
  checkPermission(flags.path!, path, "client");
  // Before we send anything: is the default path's directory still ours alone? If another
  // user could create files in it, the socket we find there may be theirs (a squatter).
  if (flags.path === defaultPath()) checkPrivateDir(privateDir()!, false);
  await talk(flags, () => connectUnix({ path, lesson: 17, timeoutMs: flags.timeout * 1000 }));
});
