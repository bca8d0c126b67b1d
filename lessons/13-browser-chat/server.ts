/**
 * Lesson 13 server: lesson 12's chat server, plus a web server for browsers.
 *
 * - The chat server is lesson 12's, unchanged (`serveChat`), on port 65413:
 *   terminal clients connect to it as before.
 * - The web server (port 65480) serves the page at `/` and, at `/ws`, the
 *   gateway (gateway.ts): each browser tab's WebSocket becomes one TCP
 *   connection to the chat server. It is written by hand on `Deno.listen`
 *   (http.ts, websocket.ts), because `Deno.serve` and Deno's WebSocket
 *   cannot be given the limits a server needs (see those files).
 * - With `--chat HOST:PORT` it runs no chat server of its own: the gateway
 *   relays to that one instead (any server of lesson 12's protocol, e.g. one
 *   of lesson 20's, so the browser page joins a chat of many servers).
 *
 * The page is plain HTML, CSS and TypeScript (page/). Browsers run
 * JavaScript, so the server strips the types from page/app.ts when it starts
 * (`stripTypeScriptTypes`, built into Deno): no build step, no bundler.
 */
import { stripTypeScriptTypes } from "node:module";
import {
  acceptConnections,
  closeQuietly,
  ConnectionLimit,
  formatAddr,
  LessonError,
  listen,
  listenError,
  onShutdown,
  parseFlags,
  parseHostPort,
  plural,
  runMain,
  ThrottledLog,
} from "../../lib/mod.ts";
import { MAX_SERVER_LINE_BYTES } from "../12-multi-user-chat/room.ts";
import { CHAT_FLAGS, serveChat } from "../12-multi-user-chat/server.ts";
import { Gateway, textResponse } from "./gateway.ts";

/** The web server's default port (the chat's is 65413, as usual). */
export const HTTP_PORT = 65480;

const PAGE = new URL("./page/", import.meta.url);

/** The page's three files, ready to serve; app.ts becomes JavaScript here. */
async function pageFiles(): Promise<Map<string, { body: string; type: string }>> {
  const read = (name: string) => Deno.readTextFile(new URL(name, PAGE));
  return new Map([
    ["/", { body: await read("index.html"), type: "text/html; charset=utf-8" }],
    ["/style.css", { body: await read("style.css"), type: "text/css; charset=utf-8" }],
    [
      "/app.js",
      {
        // "strip" only blanks out the types, so line and column numbers stay
        // the same: an error in the browser's console points into app.ts.
        body: stripTypeScriptTypes(await read("app.ts"), { mode: "strip" }),
        type: "text/javascript; charset=utf-8",
      },
    ],
  ]);
}

/**
 * Accepts the page port's connections until the listener is closed, and
 * hands each to the gateway, at most `max` at once: one more gets `503` and
 * is closed. lib's accept loop (lesson 08) keeps the server alive when the
 * process runs out of file descriptors: it waits a little, lowers the limit
 * and says so once (through the throttled log).
 */
async function servePage(
  listener: Deno.TcpListener,
  gateway: Gateway,
  max: number,
  log: ThrottledLog,
): Promise<void> {
  const limit = new ConnectionLimit(max);
  const note = (line: string) => log.event(line);
  for await (const conn of acceptConnections(listener, { limit, onError: note })) {
    // acquire waits a moment for a connection that has just closed to give its place back.
    if (!await limit.acquire()) {
      note(`turned away a page connection: ${limit.open} open (the limit)`);
      // A short answer fits in a new socket's empty send buffer: this does not wait.
      conn.write(textResponse(503, "server busy")).catch(() => {})
        .finally(() => closeQuietly(conn));
      continue;
    }
    gateway.handle(conn).finally(() => limit.close());
  }
}

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 13,
    role: "server",
    summary: "Lesson 12's chat server, and a web page that joins it from the browser " +
      "(a WebSocket gateway at /ws); with --chat, the page joins another chat server instead.",
    flags: {
      ...CHAT_FLAGS,
      "http-port": {
        type: "number",
        description: `port of the web page, 0 picks a free one (default ${HTTP_PORT}; ` +
          "with --port 0, a free one too)",
        max: 65535,
        value: "PORT",
      },
      "max-page-connections": {
        type: "number",
        description: "the most connections to the page port at once (page loads and " +
          "WebSockets); more get 503",
        default: 2000,
        min: 1,
        value: "N",
      },
      "header-timeout": {
        type: "number",
        description: "a request's head must arrive whole within this many seconds",
        default: 10,
        min: 0.1,
        integer: false,
        value: "SECONDS",
      },
      "keep-alive": {
        type: "number",
        description: "close a page connection that waits this long for its next request",
        default: 5,
        min: 0.1,
        integer: false,
        value: "SECONDS",
      },
      chat: {
        type: "string",
        description: "relay to this chat server (e.g. a lesson 20 one) instead of running one",
        value: "HOST:PORT",
      },
    },
    epilog: "Then open the page it prints in a browser, or: deno task lesson13-client\n" +
      "With lesson 20's servers: deno task lesson13-server --chat 127.0.0.1:65420",
  });
  const upstream = flags.chat === undefined
    ? undefined
    : parseHostPort(flags.chat, "--chat", "127.0.0.1:65420");
  // `--port 0` means "any free port": for the page too, unless --http-port says otherwise.
  const httpPort = flags["http-port"] ?? (flags.port === 0 ? 0 : HTTP_PORT);
  const files = await pageFiles();
  // Our own chat server, unless --chat names another.
  const chat = upstream ? undefined : listen({ host: flags.host, port: flags.port, lesson: 13 });
  const log = new ThrottledLog();

  // The origins the page is served from: only its scripts may open a WebSocket.
  const origins = new Set<string>();
  const gateway = new Gateway({
    // The gateway connects to the chat like any other client.
    chat: upstream ?? { hostname: chat!.addr.hostname, port: chat!.addr.port },
    origins,
    maxQueueBytes: flags["max-queue"],
    drainTimeoutMs: 30_000, // as lesson 12's writes: no progress for 30 s
    maxConnections: flags["max-connections"],
    // The protocol bounds every line (a `users` answer is a page of 100 names): a margin on top.
    maxServerLineBytes: 2 * MAX_SERVER_LINE_BYTES,
    files,
    http: {
      maxHeadBytes: 8192,
      maxHeaderLines: 64,
      headerTimeoutMs: flags["header-timeout"] * 1000,
      keepAliveMs: flags["keep-alive"] * 1000,
    },
    log: (line) => log.event(line),
  });
  let web: Deno.TcpListener;
  try {
    web = Deno.listen({ hostname: flags.host, port: httpPort });
  } catch (error) {
    chat?.close();
    if (error instanceof Deno.errors.AddrInUse) {
      throw new LessonError(
        `port ${httpPort} is already in use: is another server running? ` +
          "stop it, or try --http-port 0",
      );
    }
    throw listenError(error, flags.host, httpPort);
  }
  const page = formatAddr(web.addr);
  origins.add(`http://${page}`);
  if (["127.0.0.1", "::1"].includes(web.addr.hostname)) {
    origins.add(`http://localhost:${web.addr.port}`);
  }
  if (upstream) {
    console.log(`relaying to the chat server at ${formatAddr({ transport: "tcp", ...upstream })}`);
  }
  console.log(`page at http://${page}/`);

  // Ctrl-C or SIGTERM: our chat says bye to everyone (the gateway passes it
  // on to the browsers), then the web server stops. Another program's chat
  // goes on: we close the browsers' WebSockets (and so their TCP
  // connections: the chat tells the others they left).
  // Quietly: under `deno task`, one Ctrl-C can arrive twice (the terminal and the task).
  const stop = Promise.withResolvers<void>();
  const onSignal = () => {
    closeQuietly(web);
    if (chat) closeQuietly(chat);
    else stop.resolve();
  };
  onShutdown(onSignal);
  const serving = servePage(web, gateway, flags["max-page-connections"], log);
  if (chat) {
    await serveChat(chat, flags, log);
  } else {
    await stop.promise;
    log.flush();
    console.log(`shutting down: ${plural(gateway.open, "browser")} connected`);
    gateway.shutdown("the gateway is shutting down");
  }
  // A browser that never answers our close would keep its WebSocket, so 5 s at most.
  await gateway.closed(5_000);
  await serving;
  log.flush();
  Deno.exit(0);
});
