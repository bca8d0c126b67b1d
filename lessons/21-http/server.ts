/**
 * Lesson 21 server: HTTP/1.1 by hand, on a plain TCP listener.
 *
 * No `Deno.serve`, no `node:http`: lesson 08's accept loop and connection
 * limit, and request.ts to read requests (lines, then a body). Each
 * connection is a loop: read a request, answer it, and again, until the
 * client closes, says `Connection: close`, speaks HTTP/1.0, sends something
 * we must refuse, or stays quiet too long.
 *
 * It serves the files of one folder (site/ by default) and `/echo`, which
 * answers with the request as the server parsed it.
 */
import {
  acceptConnections,
  closeQuietly,
  ConnectionLimit,
  describeNetError,
  formatAddr,
  idleTimeoutFlag,
  listen,
  maxConnectionsFlag,
  onShutdown,
  parseFlags,
  plural,
  runMain,
  terminalSafe,
  ThrottledLog,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import { encodeResponse, hasToken } from "../13-browser-chat/http.ts";
import {
  ConnReader,
  DEFAULT_LIMITS,
  header,
  HttpError,
  readRequest,
  type Request,
  type RequestLimits,
} from "./request.ts";

/** The folder served by default: the lesson's small site. */
export const SITE = new URL("./site/", import.meta.url);

/** Content-Type by file extension; anything else is served as bytes. */
export const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  ico: "image/x-icon",
};

/** The largest file served (the site's files are a few KiB; see findFile). */
const MAX_FILE_BYTES = 1024 * 1024;
/** A client that does not read its answer for this long is cut off. */
const WRITE_TIMEOUT_MS = 10_000;
/** A client's pipelined requests answered in a row before the others get a turn (see serve). */
const PIPELINE_TURN = 8;
/** At shutdown, how long requests under way may go on. */
const SHUTDOWN_GRACE_MS = 1000;

/** How to run {@linkcode httpServer}. */
export interface HttpServerOptions {
  /** The folder whose files are served. */
  root: string;
  limits: RequestLimits;
  /** A request's head must arrive whole within this time from its first byte. */
  headerTimeoutMs: number;
  /** A request's body must arrive whole within this time after its head. */
  bodyTimeoutMs: number;
  /** A kept-alive connection may wait this long for its next request. */
  idleTimeoutMs: number;
  maxConnections: number;
  /** No line per request. */
  quiet: boolean;
  /** Where log lines go (default console.log). */
  write?: (line: string) => void;
}

/** What the server did, for its summary. */
export interface HttpSummary {
  connections: number;
  requests: number;
  turnedAway: number;
  /** Requests refused with a 4xx/5xx before they were read whole (400, 408, 413, 431, 505). */
  refused: number;
  timedOut: number;
  idleClosed: number;
  cutOff: number;
  bytesOut: number;
}

/** One client's connection. */
interface Client {
  conn: Deno.Conn;
  peer: string;
  /** True while waiting for the first byte of a request: nothing is under way. */
  idle: boolean;
}

/** Serves HTTP on every connection `listener` accepts, until `stop()`. */
export async function httpServer(listener: Deno.Listener, options: HttpServerOptions): Promise<{
  stop(hurry?: AbortSignal): Promise<HttpSummary>;
}> {
  const root = await Deno.realPath(options.root);
  const log = new ThrottledLog({ write: options.write });
  const note = (line: string) => options.quiet || log.event(line);
  const stats: HttpSummary = {
    connections: 0,
    requests: 0,
    turnedAway: 0,
    refused: 0,
    timedOut: 0,
    idleClosed: 0,
    cutOff: 0,
    bytesOut: 0,
  };
  const limit = new ConnectionLimit(options.maxConnections);
  const clients = new Set<Client>();
  let stopping = false;

  /** Writes an answer; counts its bytes. */
  async function send(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
    await writeAllWithTimeout(conn, bytes, WRITE_TIMEOUT_MS, "the client");
    stats.bytesOut += bytes.length;
  }

  /** One connection: requests and answers, in order, until it ends. */
  async function serve(client: Client): Promise<void> {
    const { conn, peer } = client;
    const reader = new ConnReader(conn);
    // One timer at a time: the idle wait before a request, then the head's
    // deadline from the request's first byte, then the body's.
    let timer: ReturnType<typeof setTimeout> | undefined;
    let waitingFor: "idle" | "head" | "body" = "idle";
    let expired = false;
    const arm = (what: "idle" | "head" | "body") => {
      clearTimeout(timer);
      waitingFor = what;
      const ms = what === "idle"
        ? options.idleTimeoutMs
        : what === "head"
        ? options.headerTimeoutMs
        : options.bodyTimeoutMs;
      timer = setTimeout(onTimeout, ms);
    };
    const onTimeout = () => {
      expired = true;
      if (waitingFor === "idle") {
        // Nothing under way: hang up without a word, as every server does.
        stats.idleClosed++;
        closeQuietly(conn);
        return;
      }
      // Half a request for too long (slowloris): say so, then hang up.
      stats.timedOut++;
      note(`${peer}: the request's ${waitingFor} took too long: 408, closing`);
      const answer = errorAnswer(new HttpError(408, `the ${waitingFor} took too long`));
      conn.write(answer).catch(() => {}).finally(() => closeQuietly(conn));
    };
    let inARow = 0; // requests answered from the buffer since the last pause
    reader.onData = () => {
      client.idle = false;
      if (waitingFor === "idle") arm("head");
    };
    try {
      while (!stopping || !client.idle) {
        client.idle = reader.buffered === 0;
        arm(client.idle ? "idle" : "head");
        let request: Request | null;
        try {
          request = await readRequest(reader, options.limits, () => arm("body"));
        } catch (error) {
          if (expired) return;
          if (!(error instanceof HttpError)) throw error;
          // A request we cannot read: answer, and close (where the next one
          // would start is unknown now).
          clearTimeout(timer);
          stats.refused++;
          note(`${peer}: ${error.status} ${terminalSafe(error.message)}`);
          await send(conn, errorAnswer(error));
          return;
        }
        clearTimeout(timer);
        if (request === null) return; // the client closed between requests
        stats.requests++;
        // HTTP/1.1 keeps the connection open unless told otherwise; 1.0 closes.
        const keepAlive = request.version === "HTTP/1.1" &&
          !hasToken(header(request, "connection"), "close") && !stopping;
        const answer = respond(request, root, keepAlive);
        note(`${peer} ${request.method} ${terminalSafe(request.target)} ${answer.status}`);
        await send(conn, answer.bytes);
        if (!keepAlive) return;
        // Pipelined requests already in the buffer are read, answered and
        // written without ever waiting for the network (Deno completes a
        // write that fits in the socket's buffer at once), so a client that
        // sends thousands in a row would keep the event loop to itself: the
        // other clients waited 600 ms each under 4 such connections. After
        // every few such requests, let the others have their turn.
        if (reader.buffered > 0 && ++inARow % PIPELINE_TURN === 0) {
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      }
    } catch (error) {
      if (expired) return;
      const reason = describeNetError(error);
      if (reason === undefined) throw error; // a bug: crash with the stack trace
      note(`${peer}: ${reason}`);
    } finally {
      clearTimeout(timer);
      closeQuietly(conn);
      clients.delete(client);
      limit.close();
    }
  }

  async function acceptLoop(): Promise<void> {
    for await (const conn of acceptConnections(listener, { limit, onError: note })) {
      const peer = formatAddr(conn.remoteAddr);
      if (!await limit.acquire()) {
        stats.turnedAway++;
        note(`turned away ${peer}: ${limit.open} connections open (the limit)`);
        // A short answer fits in a new socket's empty send buffer: no wait.
        const busy = errorAnswer(new HttpError(503, "too many connections: try again later"));
        conn.write(busy).catch(() => {}).finally(() => closeQuietly(conn));
        continue;
      }
      stats.connections++;
      const client: Client = { conn, peer, idle: true };
      clients.add(client);
      serve(client);
    }
  }
  const accepting = acceptLoop();

  /**
   * Stops accepting, closes the connections that wait for a request, and
   * gives those with a request under way a moment to answer it (with
   * `Connection: close`); then cuts off the rest.
   */
  async function stop(hurry?: AbortSignal): Promise<HttpSummary> {
    stopping = true;
    closeQuietly(listener);
    await accepting;
    const deadline = performance.now() + SHUTDOWN_GRACE_MS;
    while (clients.size > 0 && performance.now() < deadline && !hurry?.aborted) {
      for (const client of clients) if (client.idle) closeQuietly(client.conn);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    stats.cutOff = clients.size;
    for (const client of clients) closeQuietly(client.conn);
    while (clients.size > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    log.flush();
    return stats;
  }
  return { stop };
}

/** The answer to a request we refuse: a line of text, then the connection closes. */
function errorAnswer(error: HttpError, headers: Record<string, string> = {}): Uint8Array {
  return encodeResponse(
    error.status,
    { "content-type": "text/plain; charset=utf-8", ...headers },
    `${error.message}\n`,
    { keepAlive: false },
  );
}

/** What to send back for a request that was read whole. */
export function respond(
  request: Request,
  root: string,
  keepAlive: boolean,
): { status: number; bytes: Uint8Array } {
  const head = request.method === "HEAD";
  const answer = (status: number, headers: Record<string, string>, body: Uint8Array | string) => ({
    status,
    bytes: encodeResponse(status, headers, body, { keepAlive, head }),
  });
  const text = (status: number, message: string, headers: Record<string, string> = {}) =>
    answer(status, { "content-type": "text/plain; charset=utf-8", ...headers }, message + "\n");

  // Only "origin-form" targets: a path, maybe a query (`/a/b.css?v=2`).
  if (!request.target.startsWith("/")) return text(400, "the target must start with /");
  const path = request.target.split("?")[0];
  if (path === "/echo") {
    return answer(200, { "content-type": "application/json" }, echo(request));
  }
  if (request.method !== "GET" && !head) {
    return text(405, `${request.method} is not allowed here: GET or HEAD`, { allow: "GET, HEAD" });
  }
  const file = findFile(root, path);
  if (typeof file === "number") {
    return text(file, file === 403 ? "that path is not in the site" : "no such file");
  }
  const extension = file.path.slice(file.path.lastIndexOf(".") + 1).toLowerCase();
  const type = CONTENT_TYPES[extension] ?? "application/octet-stream";
  return answer(200, { "content-type": type }, file.bytes);
}

/** `/echo`'s answer: the request as parsed, as JSON (the body as text if it is UTF-8). */
export function echo(request: Request): string {
  let body: string;
  let bodyBase64: string | undefined;
  try {
    body = new TextDecoder("utf-8", { fatal: true }).decode(request.body);
  } catch {
    body = "";
    bodyBase64 = btoa(String.fromCharCode(...request.body));
  }
  // JSON, one field a line and one header a line, so it reads like the request.
  const fields = [
    `"method": ${JSON.stringify(request.method)}`,
    `"target": ${JSON.stringify(request.target)}`,
    `"version": ${JSON.stringify(request.version)}`,
    `"headers": [${
      request.headers.map((pair) => `\n    ${JSON.stringify(pair).replace('","', '", "')}`).join(
        ",",
      )
    }\n  ]`,
    `"bodyBytes": ${request.body.length}`,
    `"body": ${JSON.stringify(body)}`,
    ...(bodyBase64 === undefined ? [] : [`"bodyBase64": ${JSON.stringify(bodyBase64)}`]),
  ];
  return `{\n  ${fields.join(",\n  ")}\n}\n`;
}

/**
 * The file a path names inside `root`, or 404 (none) or 403 (outside).
 *
 * Path traversal is the classic hole of a file server: `/../../etc/passwd`.
 * Three checks, because each one alone has been bypassed somewhere:
 * 1. decode `%xx` first, THEN look for `..` (`%2e%2e` is `..`, `..%2f` is `../`);
 * 2. refuse any `..` segment (and a NUL byte, which some file APIs end a name at);
 * 3. resolve symbolic links (`Deno.realPath`) and check that the real path is
 *    still inside the root: a link in the folder may point anywhere.
 *
 * The file system calls are the synchronous ones, on purpose, and measured:
 * each asynchronous call is a trip to a helper thread and back, and with
 * three per request (realPath, stat, read) they were most of the server's
 * time: 4,300 requests/s for /style.css against 16,000 for /echo, which
 * touches no file; synchronous, 9,800 (lesson21-bench). The price: while a
 * file is read, every other client waits. For a folder of small files in
 * the page cache that is microseconds, and files are at most 1 MiB here. A
 * server of big files, or of a slow disk, reads asynchronously, in pieces.
 */
export function findFile(
  root: string,
  path: string,
): { path: string; bytes: Uint8Array } | 403 | 404 {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return 404; // a bad %xx escape names no file
  }
  if (decoded.includes("\0") || decoded.includes("\\")) return 403;
  const segments = decoded.split("/").filter((segment) => segment !== "" && segment !== ".");
  if (segments.includes("..")) return 403;
  if (decoded.endsWith("/")) segments.push("index.html");
  try {
    const real = Deno.realPathSync([root, ...segments].join("/"));
    if (!real.startsWith(root + "/")) return 403;
    const info = Deno.statSync(real);
    if (!info.isFile || info.size > MAX_FILE_BYTES) return 404;
    return { path: real, bytes: Deno.readFileSync(real) };
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return 403; // a link to a place we may not read
    }
    // Not found, but also a name too long for the system (a client chooses
    // the name!), a loop of links, a file in place of a folder: no file here.
    return 404;
  }
}

/** The summary line printed at shutdown. */
export function summaryLine(stats: HttpSummary): string {
  const extra = [
    stats.turnedAway > 0 ? `${stats.turnedAway} turned away` : "",
    stats.refused > 0 ? `${stats.refused} refused` : "",
    stats.timedOut > 0 ? `${stats.timedOut} timed out` : "",
    stats.idleClosed > 0 ? `${stats.idleClosed} closed for idling` : "",
    stats.cutOff > 0 ? `${stats.cutOff} cut off at shutdown` : "",
  ].filter(Boolean).join(", ");
  return `served ${plural(stats.requests, "request")} on ${
    plural(stats.connections, "connection")
  }` + (extra ? ` (${extra})` : "") + `, ${stats.bytesOut} bytes out`;
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 21,
      role: "server",
      summary: "A small HTTP/1.1 server written on a plain TCP socket: serves the files of " +
        "one folder (the lesson's site), and /echo shows each request as the server parsed it.",
      flags: {
        root: {
          type: "string",
          description: "the folder to serve (give deno --allow-read for it; default the " +
            "lesson's site/)",
          value: "DIR",
        },
        "header-timeout": {
          type: "number",
          description: "a request's head must arrive whole within this many seconds (slowloris)",
          default: 10,
          min: 0.1,
          integer: false,
          value: "SECONDS",
        },
        "body-timeout": {
          type: "number",
          description: "a request's body must arrive whole within this many seconds",
          default: 30,
          min: 0.1,
          integer: false,
          value: "SECONDS",
        },
        "idle-timeout": {
          ...idleTimeoutFlag(15),
          description: "close a kept-alive connection that waits this long for its next request",
          integer: false,
          min: 0.1,
        },
        "max-connections": {
          ...maxConnectionsFlag(1000),
          description: "serve at most this many connections at once; more get 503",
        },
        quiet: { type: "boolean", description: "no line per request" },
      },
      epilog: "Then open the page in a browser, or: curl -v http://127.0.0.1:65421/",
    });
    const root = flags.root ?? decodeURIComponent(SITE.pathname);
    const listener = listen({ host: flags.host, port: flags.port, lesson: 21 });
    const server = await httpServer(listener, {
      root,
      limits: DEFAULT_LIMITS,
      headerTimeoutMs: flags["header-timeout"] * 1000,
      bodyTimeoutMs: flags["body-timeout"] * 1000,
      idleTimeoutMs: flags["idle-timeout"] * 1000,
      maxConnections: flags["max-connections"],
      quiet: flags.quiet,
    });
    const { hurry } = await new Promise<{ hurry: AbortSignal }>((resolve) => onShutdown(resolve));
    console.log("shutting down");
    console.log(summaryLine(await server.stop(hurry)));
  });
}
