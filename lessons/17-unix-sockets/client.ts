/**
 * Lesson 17 client: lesson 05's client over a Unix socket.
 *
 * Everything after the connection is lesson 05's `talk`: send the lines
 * (one write each, `--split` or `--burst`), print the answers. Only the
 * connection is new: `connectUnix` (lib/net.ts) opens the socket file at
 * `--path`, and says in one line whether the file is missing, stale (no
 * server on it) or closed to this user.
 */
import { connectUnix, parseFlags, runMain } from "../../lib/mod.ts";
import { CLIENT_FLAGS, talk } from "../05-line-framing/client.ts";
import { checkPermission, PATH_FLAG, socketPath } from "./socket_path.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 17,
    role: "client",
    hostPort: false,
    summary: "Sends lines to the lesson 17 server over a Unix socket and prints each answer " +
      "line. Lines come from --message (repeatable) or standard input.",
    flags: { path: PATH_FLAG, ...CLIENT_FLAGS },
  });
  const path = socketPath(flags.path);
  checkPermission(flags.path, path, "client");
  await talk(flags, () => connectUnix({ path, lesson: 17, timeoutMs: flags.timeout * 1000 }));
});
