/**
 * Listening and connecting, with errors a learner can act on.
 *
 * `Deno.listen` and `Deno.connect` are one line each; what they throw is not
 * friendly ("Address already in use (os error 98)" with a stack trace). These
 * wrappers print the `listening on HOST:PORT` line every lesson server shows,
 * and turn each common failure into one line that says what happened and what
 * to do next.
 *
 * @module
 */

import { LessonError } from "./errors.ts";
import { taskName } from "./flags.ts";
import { prepareSignals } from "./signals.ts";

/**
 * Formats a socket address as `HOST:PORT`, with IPv6 hosts in brackets
 * (`[::1]:65402`) as they are written in URLs. A Unix socket is `unix:PATH`
 * (`unix:@NAME` for a Linux abstract name; a client's end usually has no
 * path: `unix:(unnamed)`).
 *
 * @example
 * ```ts
 * import { formatAddr } from "./net.ts";
 * formatAddr({ transport: "tcp", hostname: "127.0.0.1", port: 65402 }); // "127.0.0.1:65402"
 * ```
 */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
    return `${host}:${addr.port}`;
  }
  if (!("path" in addr)) return String(addr);
  const path = addr.path ?? "";
  // An abstract name starts with a NUL byte; `ss -x` and others show it as @.
  return `unix:${path.startsWith("\0") ? "@" + path.slice(1) : path || "(unnamed)"}`;
}

/** `HOST:PORT` for a host and port given separately. */
function hostPort(hostname: string, port: number): string {
  return formatAddr({ transport: "tcp", hostname, port });
}

/** Where to listen or connect, as parsed from the command line. */
export interface Endpoint {
  /** Address or host name. */
  host: string;
  /** Port number, 0-65535. */
  port: number;
  /** The lesson number, used in hints such as "start it with: deno task lesson02-server". */
  lesson: number;
}

/**
 * Turns an error from `Deno.listen` into a one-line {@linkcode LessonError}.
 *
 * @example
 * ```ts
 * import { listenError } from "./net.ts";
 * listenError(new Deno.errors.AddrInUse("os error 98"), "127.0.0.1", 65402).message;
 * // "port 65402 is already in use: is another server running? stop it, or try --port 0"
 * ```
 */
export function listenError(error: unknown, host: string, port: number): LessonError {
  const where = hostPort(host, port);
  if (error instanceof Deno.errors.AddrInUse) {
    return new LessonError(
      `port ${port} is already in use: is another server running? stop it, or try --port 0`,
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new LessonError(
      `permission denied to listen on ${where}: ports below 1024 need administrator rights; ` +
        "use a port from 1024 to 65535, or --port 0",
    );
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new LessonError(
      `cannot listen on ${host}: it is not an address of this machine; try --host 127.0.0.1`,
    );
  }
  if (error instanceof Deno.errors.NotCapable) {
    return new LessonError(
      `not permitted to listen on ${where}: the task's --allow-net list does not include ${host}`,
    );
  }
  return new LessonError(`could not listen on ${where}: ${plain(error)}`);
}

/**
 * Starts a TCP server and prints `listening on HOST:PORT` with the real port
 * (which matters with `--port 0`, where the system picks one).
 *
 * It first sets up Ctrl-C handling ({@linkcode prepareSignals}): Deno does
 * that lazily and needs a file descriptor for it, so a crowd that arrives
 * the moment we listen could otherwise leave none and crash Deno.
 *
 * @example
 * ```ts ignore
 * import { listen } from "./net.ts";
 * const listener = listen({ host: "127.0.0.1", port: 0, lesson: 2 });
 * for await (const conn of listener) conn.close();
 * ```
 */
export function listen(endpoint: Endpoint): Deno.TcpListener {
  prepareSignals();
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: endpoint.host, port: endpoint.port });
  } catch (error) {
    throw listenError(error, endpoint.host, endpoint.port);
  }
  console.log(`listening on ${formatAddr(listener.addr)}`);
  return listener;
}

/**
 * Turns an error from `Deno.connect` into a one-line {@linkcode LessonError}.
 *
 * @example
 * ```ts
 * import { connectError } from "./net.ts";
 * connectError(new Deno.errors.ConnectionRefused("os error 111"), "127.0.0.1", 65402, 2).message;
 * // "could not connect to 127.0.0.1:65402: connection refused: is the server running?
 * //  start it with: deno task lesson02-server"
 * ```
 */
export function connectError(
  error: unknown,
  host: string,
  port: number,
  lesson: number,
): LessonError {
  const prefix = `could not connect to ${hostPort(host, port)}`;
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new LessonError(
      `${prefix}: connection refused: is the server running? ` +
        `start it with: deno task ${taskName(lesson, "server")}`,
    );
  }
  if (error instanceof Deno.errors.ConnectionReset) {
    return new LessonError(`${prefix}: connection reset: the server closed it at once`);
  }
  if (error instanceof Deno.errors.TimedOut) {
    return new LessonError(`${prefix}: timed out: is the address right?`);
  }
  if (error instanceof Deno.errors.BrokenPipe) {
    return new LessonError(`${prefix}: broken pipe: the server closed the connection`);
  }
  if (error instanceof Deno.errors.NotCapable) {
    return new LessonError(
      `${prefix}: not permitted: the task's --allow-net list does not include ${host}`,
    );
  }
  return new LessonError(`${prefix}: ${plain(error)}`);
}

/**
 * Connects to a server, giving up after `timeoutMs` (default 10 s). Failures
 * become one-line errors such as `could not connect to 127.0.0.1:65402:
 * connection refused: is the server running? start it with: deno task lesson02-server`.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./net.ts";
 * const conn = await connect({ host: "127.0.0.1", port: 65402, lesson: 2 });
 * conn.close();
 * ```
 */
export async function connect(
  endpoint: Endpoint & { timeoutMs?: number },
): Promise<Deno.TcpConn> {
  const timeoutMs = endpoint.timeoutMs ?? 10_000;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    return await Deno.connect({ hostname: endpoint.host, port: endpoint.port, signal });
  } catch (error) {
    if (signal.aborted) {
      throw new LessonError(
        `could not connect to ${hostPort(endpoint.host, endpoint.port)}: ` +
          `no answer after ${timeoutMs / 1000} s: is the address right?`,
      );
    }
    throw connectError(error, endpoint.host, endpoint.port, endpoint.lesson);
  }
}

/**
 * Connects to a Unix socket at `path` (lesson 17), giving up after
 * `timeoutMs` (default 10 s). Failures become one line that says what the
 * path is: no file, a file that nobody listens on (a stale socket), or one
 * this user may not open.
 *
 * @example
 * ```ts ignore
 * import { connectUnix } from "./net.ts";
 * const conn = await connectUnix({ path: "/tmp/deno-socket-lessons-17.sock", lesson: 17 });
 * conn.close();
 * ```
 */
export async function connectUnix(
  endpoint: { path: string; lesson: number; timeoutMs?: number },
): Promise<Deno.UnixConn> {
  const { path, lesson, timeoutMs = 10_000 } = endpoint;
  const prefix = `could not connect to ${formatAddr({ transport: "unix", path })}`;
  const start = `start it with: deno task ${taskName(lesson, "server")}`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Deno.connect has no signal for Unix sockets: race it against a timer.
  const connecting = Deno.connect({ transport: "unix", path });
  try {
    return await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new LessonError(`${prefix}: no answer after ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    if (error instanceof LessonError) {
      // The timer won, but the connect goes on: if it still succeeds, close what it brings.
      connecting.then((conn) => conn.close(), () => {});
      throw error;
    }
    if (error instanceof Deno.errors.NotFound) {
      throw new LessonError(`${prefix}: no such socket file: is the server running? ${start}`);
    }
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new LessonError(
        `${prefix}: connection refused: the file is there but no server listens on it ` +
          `(a stale socket?): ${start}`,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new LessonError(
        `${prefix}: permission denied: the socket file's permissions do not let this user in`,
      );
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new LessonError(
        `${prefix}: not permitted: the task may only use its own socket path ` +
          "(--allow-read, --allow-write and --allow-net=unix:PATH)",
      );
    }
    throw new LessonError(`${prefix}: ${plain(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Closes a connection or listener, ignoring "already closed". Useful in
 * `finally` blocks, where the peer or a timeout may have closed it first.
 *
 * @example
 * ```ts
 * import { closeQuietly } from "./net.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * closeQuietly(listener);
 * closeQuietly(listener); // no error the second time
 * ```
 */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

/** The OS message without its "(os error N)" suffix. */
function plain(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/ \(os error \d+\)$/, "").replace(
    /^failed to lookup address information: /,
    "no such host: ",
  );
}
