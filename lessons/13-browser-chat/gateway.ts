/**
 * Lesson 13: the gateway between browsers and lesson 12's chat server.
 *
 * A browser cannot open a raw TCP connection; it can open a WebSocket. So the
 * web server serves the page at `/` and, at `/ws`, turns each WebSocket into
 * one TCP connection to the chat server, relaying whole lines both ways: one
 * WebSocket text message is one line of lesson 12's protocol, unchanged. The
 * chat server cannot tell a browser user from a terminal user.
 *
 * What the gateway adds is what a browser makes necessary: it checks the
 * `Origin` of every WebSocket (a page from any other site could otherwise
 * join the chat as you), it refuses a message that would not be exactly one
 * line, and it keeps lesson 12's limits on its side too (line length, and the
 * slow-reader rule, watching `bufferedAmount`).
 *
 * The chat server may be the one server.ts runs itself, or any other that
 * speaks lesson 12's protocol (`--chat HOST:PORT`, e.g. lesson 20's): the
 * gateway is just one more of its TCP clients.
 *
 * @module
 */
import {
  ConnectionLimit,
  describeNetError,
  formatAddr,
  LineDecoder,
  quote,
  utf8Encode,
} from "../../lib/mod.ts";
import { ConnectionOutbox, MAX_LINE_BYTES } from "../12-multi-user-chat/room.ts";

/** What the gateway needs to know. */
export interface GatewayOptions {
  /** Where the chat server listens (ours, or another's): the gateway is one of its TCP clients. */
  chat: { hostname: string; port: number };
  /** The page's own origins, e.g. `http://127.0.0.1:65480`: only they may open a WebSocket. */
  origins: Set<string>;
  /** The most bytes waiting for one browser (or for the chat server); see `relay`. */
  maxQueueBytes: number;
  /** A browser that takes none of what waits for it for this long is cut off. */
  drainTimeoutMs: number;
  /** The most WebSockets open at once; more get 503. */
  maxConnections: number;
  /** The longest line the chat server sends (a `users` line grows with the users). */
  maxServerLineBytes: number;
  /** The page's files by path (`/`, `/style.css`, `/app.js`). */
  files: Map<string, { body: string; type: string }>;
  /** Where the gateway notes WebSockets opened, closed and refused. */
  log: (line: string) => void;
}

/**
 * What every answer carries. The Content-Security-Policy lets the page run
 * only its own script and talk only to its own server: a second wall behind
 * "text is always shown as text" (see the README).
 */
const HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/** How long to wait for the chat server to accept a connection. */
const CONNECT_TIMEOUT_MS = 10_000;

function text(status: number, body: string): Response {
  return new Response(body + "\n", {
    status,
    headers: { ...HEADERS, "content-type": "text/plain; charset=utf-8" },
  });
}

/**
 * The web server's request handler (`handle`): the page's files, and `/ws`.
 *
 * @example
 * ```ts ignore
 * const gateway = new Gateway({ chat: { hostname: "127.0.0.1", port: 65413 }, ... });
 * Deno.serve({ hostname: "127.0.0.1", port: 65480 }, gateway.handle);
 * ```
 */
export class Gateway {
  #options: GatewayOptions;
  #limit: ConnectionLimit;
  /**
   * One promise per WebSocket, settled when both of its sides are closed,
   * and how to end it from here (at shutdown).
   */
  #relays = new Map<Promise<void>, (code: number, reason: string) => void>();

  /** @param options where the chat is, who may connect, the limits */
  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#limit = new ConnectionLimit(options.maxConnections);
  }

  /** How many WebSockets are open. */
  get open(): number {
    return this.#relays.size;
  }

  /** Answers one HTTP request (pass it to `Deno.serve`). */
  handle = async (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    const options = this.#options;
    const path = new URL(request.url).pathname;
    if (path !== "/ws") {
      const file = options.files.get(path);
      if (!file) return text(404, "not found");
      if (request.method !== "GET" && request.method !== "HEAD") {
        return text(405, "only GET and HEAD");
      }
      return new Response(file.body, { headers: { ...HEADERS, "content-type": file.type } });
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return text(426, "this is the WebSocket endpoint: open the page at / instead");
    }
    // Deno.upgradeWebSocket accepts any Origin. A browser always sends the
    // Origin of the page that opens the WebSocket; a page on any other site
    // (or a missing Origin: not a browser on our page) is refused.
    const origin = request.headers.get("origin");
    const browser = formatAddr(info.remoteAddr);
    if (origin === null || !options.origins.has(origin)) {
      options.log(`refused a WebSocket from ${browser}: origin ${quote(origin ?? "(none)")}`);
      return text(403, "forbidden: only the chat's own page may open a WebSocket");
    }
    if (!this.#limit.tryOpen()) return text(503, "server busy");
    // The upgrade first: it throws for a request that is not a valid
    // WebSocket handshake (no Sec-WebSocket-Key, say). That one gets 400 and
    // gives its place back, before any connection to the chat server is made.
    // A ping every 30 s; a peer that does not answer one is dropped.
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request, { idleTimeout: 30 });
    } catch {
      this.#limit.close();
      return text(400, "bad WebSocket request");
    }
    const { socket, response } = upgraded;
    let conn: Deno.TcpConn | undefined;
    let unreachable = "";
    try {
      conn = await Deno.connect({
        ...options.chat,
        signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
      });
    } catch (error) {
      const why = error instanceof DOMException && error.name === "TimeoutError"
        ? `no answer in ${CONNECT_TIMEOUT_MS / 1000} s`
        : describeNetError(error);
      if (why === undefined) {
        this.#limit.close();
        throw error; // a bug
      }
      const chat = formatAddr({ transport: "tcp", ...options.chat });
      unreachable = `the chat server at ${chat} is not answering: ${why}`;
    }
    // No chat server: a browser cannot read an HTTP error's text, so it gets
    // the WebSocket anyway, one `error` line saying why, and a close with the
    // same reason (the page shows it). It counts as open until it is closed.
    const { done, end } = conn === undefined
      ? refuse(socket, unreachable)
      : relay(socket, conn, options);
    options.log(
      conn === undefined
        ? `browser ${browser}: ${unreachable}`
        : `browser ${browser} connected through ${formatAddr(conn.localAddr)}`,
    );
    const relaying = done.finally(() => {
      this.#relays.delete(relaying);
      this.#limit.close();
      if (conn !== undefined) options.log(`browser ${browser} disconnected`);
    });
    this.#relays.set(relaying, end);
    return response;
  };

  /**
   * Closes every WebSocket from the gateway's side (code 1001, "going away"),
   * each with its TCP connection: for a gateway in front of another
   * program's chat server, which will not say `bye` when we stop.
   */
  shutdown(reason: string): void {
    for (const end of this.#relays.values()) end(GOING_AWAY, reason);
  }

  /**
   * Waits until every WebSocket is closed (at most `timeoutMs`): at shutdown,
   * the chat's `bye` must reach the browsers before the web server stops.
   */
  async closed(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(this.#relays.keys()),
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
  }
}

/** WebSocket close codes the gateway uses (RFC 6455, section 7.4.1). */
const NORMAL = 1000;
const GOING_AWAY = 1001;
const POLICY = 1008;
const TRY_AGAIN_LATER = 1013;

/** A close reason is at most 123 bytes of UTF-8. */
function closeReason(text: string): string {
  while (utf8Encode(text).length > 123) text = text.slice(0, -1);
  return text;
}

/** One WebSocket, and how to end it. */
interface Relay {
  /** Settles once the WebSocket (and its TCP connection, if any) is closed. */
  done: Promise<void>;
  /** Ends it now with this close code and reason. */
  end: (code: number, reason: string) => void;
}

/** A WebSocket with no chat server behind it: one `error` line, then a close. */
function refuse(socket: WebSocket, why: string): Relay {
  const end = (code: number, reason: string) => {
    if (socket.readyState <= WebSocket.OPEN) socket.close(code, closeReason(reason));
  };
  socket.onopen = () => {
    socket.send(`error chat-unreachable ${why}`);
    end(TRY_AGAIN_LATER, why);
  };
  socket.onerror = () => {};
  return { done: new Promise((resolve) => socket.onclose = () => resolve()), end };
}

/**
 * Relays lines between one WebSocket and one TCP connection to the chat
 * server, until either side ends. `done` resolves once both are closed.
 */
function relay(socket: WebSocket, conn: Deno.TcpConn, options: GatewayOptions): Relay {
  // Towards the chat server: lesson 12's bounded queue (send never waits).
  const toChat = new ConnectionOutbox(conn, {
    maxQueueBytes: options.maxQueueBytes,
    writeTimeoutMs: 30_000,
  });
  let ended = false;

  /** Ends both sides once: an optional last line for the browser, then close. */
  const end = (code: number, reason: string, lastLine?: string) => {
    if (ended) return;
    ended = true;
    if (lastLine !== undefined && socket.readyState === WebSocket.OPEN) socket.send(lastLine);
    toChat.close(); // the chat server sees the user hang up, and tells the others `left`
    if (socket.readyState <= WebSocket.OPEN) socket.close(code, closeReason(reason));
  };

  // socket.bufferedAmount: bytes handed to send() that are not written yet.
  // It is this browser's outgoing queue; --max-queue bounds it (read loop below).
  const slowReader = () =>
    end(POLICY, "slow-reader", "error slow-reader you did not read your messages");
  const tooMuchWaiting = () => socket.bufferedAmount > options.maxQueueBytes;

  /** One line to the browser (it is open, or the line is dropped). */
  const toBrowser = (line: string) => {
    if (!ended && socket.readyState === WebSocket.OPEN) socket.send(line);
  };

  /**
   * Waits until the browser has taken what waits for it (there is no
   * "drain" event: we look every 10 ms). False if it took nothing for
   * `drainTimeoutMs`, or the WebSocket ended.
   */
  const drained = async (): Promise<boolean> => {
    let last = socket.bufferedAmount;
    let progressAt = Date.now();
    while (!ended && tooMuchWaiting()) {
      if (socket.bufferedAmount < last) progressAt = Date.now();
      last = socket.bufferedAmount;
      if (Date.now() - progressAt > options.drainTimeoutMs) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return !ended;
  };

  // Browser → chat: one message is one line, or it is refused with one
  // answer in the protocol's own form, so the page's "one answer per line"
  // still holds. It is never split into several lines.
  const refuseLine = (answer: string) => tooMuchWaiting() ? slowReader() : toBrowser(answer);
  socket.onmessage = (event: MessageEvent) => {
    if (ended) return;
    const line = event.data;
    if (typeof line !== "string") {
      return refuseLine("error not-text send text messages: one message is one line");
    }
    if (/[\r\n]/.test(line)) {
      return refuseLine("error line-break a message is one line: no CR or LF in it");
    }
    if (utf8Encode(line).length > MAX_LINE_BYTES) {
      return refuseLine(`error line-too-long lines are at most ${MAX_LINE_BYTES} bytes`);
    }
    if (!toChat.send(line)) end(POLICY, "too-fast"); // the chat server is not keeping up
  };

  // Chat → browser starts once the WebSocket is open (a `server busy` from
  // the chat server must not be lost).
  socket.onopen = async () => {
    const decoder = new LineDecoder(options.maxServerLineBytes);
    const buffer = new Uint8Array(16 * 1024);
    let why = "the chat server closed the connection";
    try {
      while (!ended) {
        const n = await conn.read(buffer);
        if (n === null) break;
        for (const line of decoder.push(buffer.subarray(0, n))) toBrowser(line);
        if (decoder.error) {
          why = `the chat server broke the protocol: ${decoder.error.message}`;
          break;
        }
        // Backpressure: while too much waits for the browser, read no more.
        // (Not a cut-off at once: in a burst, bufferedAmount jumps even for a
        // fast reader, as every send() of this turn counts before any is
        // written.) The chat server's queue for this user fills meanwhile,
        // and lesson 12's rule cuts off a reader that stays slow.
        if (tooMuchWaiting() && !(await drained())) {
          if (!ended) slowReader();
          return;
        }
      }
    } catch (error) {
      const reason = describeNetError(error);
      if (reason === undefined) throw error; // a bug
      why = `lost the chat server: ${reason}`;
    }
    end(NORMAL, why);
  };

  socket.onerror = () => {}; // a close event follows
  const done = new Promise<void>((resolve) => {
    socket.onclose = () => {
      end(NORMAL, "");
      toChat.done.finally(resolve); // the TCP side is closed too
    };
  });
  return { done, end: (code, reason) => end(code, reason) };
}
