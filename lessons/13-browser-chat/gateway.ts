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
 * line, and it keeps lesson 12's limits on its side too (line length, checked
 * on each frame's header by websocket.ts, and the slow-reader rule, watching
 * `bufferedAmount`). Each page-port connection is read with http.ts's limits
 * (bytes, lines and time for a request head).
 *
 * The chat server may be the one server.ts runs itself, or any other that
 * speaks lesson 12's protocol (`--chat HOST:PORT`, e.g. lesson 20's): the
 * gateway is just one more of its TCP clients.
 *
 * @module
 */
import {
  closeQuietly,
  ConnectionLimit,
  describeNetError,
  formatAddr,
  isOutOfResources,
  LineDecoder,
  quote,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import { ConnectionOutbox, MAX_LINE_BYTES } from "../12-multi-user-chat/room.ts";
import {
  encodeResponse,
  hasToken,
  HttpError,
  type HttpLimits,
  type RequestHead,
  RequestReader,
} from "./http.ts";
import { acceptKey, CloseCode, WebSocketConnection } from "./websocket.ts";

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
  /** The limits on each HTTP request (http.ts). */
  http: HttpLimits;
  /** A ping this often to each browser; one that sent nothing since the last is dropped. */
  pingIntervalMs?: number;
  /** Where the gateway notes WebSockets opened, closed and refused. */
  log: (line: string) => void;
}

/**
 * What every answer carries. The Content-Security-Policy lets the page run
 * only its own script and talk only to its own server: a second wall behind
 * "text is always shown as text" (see the README).
 */
export const HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/** How long to wait for the chat server to accept a connection. */
const CONNECT_TIMEOUT_MS = 10_000;

/** A write to a browser that makes no progress for this long gives up on it. */
const WRITE_TIMEOUT_MS = 30_000;

/** After our close frame, the longest wait for the browser's. */
const CLOSE_TIMEOUT_MS = 5_000;

/** A plain-text answer (errors): `text/plain`, with the usual headers. */
export function textResponse(status: number, body: string, keepAlive = false): Uint8Array {
  return encodeResponse(
    status,
    { ...HEADERS, "content-type": "text/plain; charset=utf-8" },
    body + "\n",
    { keepAlive },
  );
}

/**
 * The page port's connection handler (`handle`): HTTP requests for the
 * page's files, and `/ws`, where a request becomes a WebSocket.
 *
 * @example
 * ```ts ignore
 * const gateway = new Gateway({ chat: { hostname: "127.0.0.1", port: 65413 }, ... });
 * for await (const conn of acceptConnections(listener)) gateway.handle(conn);
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

  /**
   * Serves one connection of the page port: request after request
   * (keep-alive), until the client closes it, stays quiet too long or
   * breaks a rule; or, if it becomes a WebSocket, until that ends. Never
   * throws for what a client does.
   */
  handle = async (conn: Deno.TcpConn): Promise<void> => {
    const reader = new RequestReader(conn, this.#options.http);
    try {
      while (true) {
        const request = await reader.next();
        if (request === null) break; // closed, or quiet for too long
        const answer = await this.#answer(conn, request, reader);
        if ("websocket" in answer) return await answer.websocket; // the relay owns it now
        await writeAllWithTimeout(conn, answer.bytes, WRITE_TIMEOUT_MS, "the browser");
        if (!answer.keepAlive) break;
      }
    } catch (error) {
      if (error instanceof HttpError) {
        // A head that breaks a rule: one answer, then close.
        const answer = textResponse(error.status, error.message);
        await writeAllWithTimeout(conn, answer, WRITE_TIMEOUT_MS, "the browser").catch(() => {});
      } else if (describeNetError(error) === undefined) {
        throw error; // a bug
      }
    }
    closeQuietly(conn);
  };

  /** The answer to one request, or, once the connection became a WebSocket, its end. */
  async #answer(
    conn: Deno.TcpConn,
    request: RequestHead,
    reader: RequestReader,
  ): Promise<{ bytes: Uint8Array; keepAlive: boolean } | { websocket: Promise<void> }> {
    const options = this.#options;
    const headers = request.headers;
    // Keep the connection for the next request, unless the client said
    // `close`, speaks HTTP/1.0, or sent a body (we read none: its bytes
    // would be taken for the next request).
    const keepAlive = request.version === "1.1" && !hasToken(headers.get("connection"), "close") &&
      !headers.has("transfer-encoding") && (headers.get("content-length") ?? "0") === "0";
    const text = (status: number, body: string) => ({
      bytes: textResponse(status, body, keepAlive),
      keepAlive,
    });
    const path = request.target.split("?")[0];
    if (path !== "/ws") {
      const file = options.files.get(path);
      if (!file) return text(404, "not found");
      if (request.method !== "GET" && request.method !== "HEAD") {
        return text(405, "only GET and HEAD");
      }
      const bytes = encodeResponse(200, { ...HEADERS, "content-type": file.type }, file.body, {
        keepAlive,
        head: request.method === "HEAD",
      });
      return { bytes, keepAlive };
    }
    if (!hasToken(headers.get("upgrade"), "websocket")) {
      return text(426, "this is the WebSocket endpoint: open the page at / instead");
    }
    // A browser always sends the Origin of the page that opens the
    // WebSocket; a page on any other site (or a missing Origin: not a
    // browser on our page) is refused.
    const origin = headers.get("origin");
    const browser = formatAddr(conn.remoteAddr);
    if (origin === undefined || !options.origins.has(origin)) {
      options.log(`refused a WebSocket from ${browser}: origin ${quote(origin ?? "(none)")}`);
      return text(403, "forbidden: only the chat's own page may open a WebSocket");
    }
    if (!this.#limit.tryOpen()) return text(503, "server busy");
    // A valid handshake (RFC 6455, 4.2.1): GET, `Connection: Upgrade`,
    // version 13, and a key of 16 random bytes in base64 (24 characters).
    const key = headers.get("sec-websocket-key") ?? "";
    if (
      request.method !== "GET" || !hasToken(headers.get("connection"), "upgrade") ||
      headers.get("sec-websocket-version") !== "13" || !/^[A-Za-z0-9+/]{22}==$/.test(key)
    ) {
      this.#limit.close(); // its place back
      return text(400, "bad WebSocket request");
    }
    let chat: Deno.TcpConn | undefined;
    let unreachable = "";
    try {
      chat = await Deno.connect({
        ...options.chat,
        signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
      });
    } catch (error) {
      const why = error instanceof DOMException && error.name === "TimeoutError"
        ? `no answer in ${CONNECT_TIMEOUT_MS / 1000} s`
        : isOutOfResources(error)
        ? "this server is out of file descriptors, try again later"
        : describeNetError(error);
      if (why === undefined) {
        this.#limit.close();
        throw error; // a bug
      }
      const address = formatAddr({ transport: "tcp", ...options.chat });
      unreachable = `the chat server at ${address} is not answering: ${why}`;
    }
    // The handshake's answer: from here on, the connection carries frames.
    const accept = await acceptKey(key);
    const switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
    const ws = new WebSocketConnection(conn, {
      maxMessageBytes: MAX_LINE_BYTES,
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      writeTimeoutMs: options.drainTimeoutMs,
      closeTimeoutMs: CLOSE_TIMEOUT_MS,
      leftover: reader.takeLeftover(),
      preamble: new TextEncoder().encode(switching),
    });
    // No chat server: a browser cannot read an HTTP error's text, so it gets
    // the WebSocket anyway, one `error` line saying why, and a close with the
    // same reason (the page shows it). It counts as open until it is closed.
    const { done, end } = chat === undefined ? refuse(ws, unreachable) : relay(ws, chat, options);
    options.log(
      chat === undefined
        ? `browser ${browser}: ${unreachable}`
        : `browser ${browser} connected through ${formatAddr(chat.localAddr)}`,
    );
    const relaying = done.finally(() => {
      this.#relays.delete(relaying);
      this.#limit.close();
      if (chat !== undefined) options.log(`browser ${browser} disconnected`);
    });
    this.#relays.set(relaying, end);
    return { websocket: relaying };
  }

  /**
   * Closes every WebSocket from the gateway's side (code 1001, "going away"),
   * each with its TCP connection: for a gateway in front of another
   * program's chat server, which will not say `bye` when we stop.
   */
  shutdown(reason: string): void {
    for (const end of this.#relays.values()) end(CloseCode.goingAway, reason);
  }

  /**
   * Waits until every WebSocket is closed (at most `timeoutMs`): at shutdown,
   * the chat's `bye` must reach the browsers before the server stops.
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

/** One WebSocket, and how to end it. */
interface Relay {
  /** Settles once the WebSocket (and its TCP connection to the chat, if any) is closed. */
  done: Promise<void>;
  /** Ends it now with this close code and reason. */
  end: (code: number, reason: string) => void;
}

/** A WebSocket with no chat server behind it: one `error` line, then a close. */
function refuse(ws: WebSocketConnection, why: string): Relay {
  ws.send(`error chat-unreachable ${why}`);
  ws.close(CloseCode.tryAgainLater, why);
  return { done: ws.closed.then(() => {}), end: (code, reason) => ws.close(code, reason) };
}

/**
 * Relays lines between one WebSocket and one TCP connection to the chat
 * server, until either side ends. `done` resolves once both are closed.
 */
function relay(ws: WebSocketConnection, conn: Deno.TcpConn, options: GatewayOptions): Relay {
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
    if (lastLine !== undefined) ws.send(lastLine);
    toChat.close(); // the chat server sees the user hang up, and tells the others `left`
    ws.close(code, reason);
  };

  // ws.bufferedAmount: frames queued for the browser and not yet written.
  // It is this browser's outgoing queue; --max-queue bounds it (read loop below).
  const tooMuchWaiting = () => ws.bufferedAmount > options.maxQueueBytes;

  // Browser → chat: one message is one line, or it is refused with one
  // answer in the protocol's own form, so the page's "one answer per line"
  // still holds. It is never split into several lines. (A message over 4,096
  // bytes never gets here: the frame's header already said so, see onFail.)
  const refuseLine = (answer: string) =>
    tooMuchWaiting()
      ? end(CloseCode.policy, "slow-reader", "error slow-reader you did not read your messages")
      : ws.send(answer);
  ws.onMessage = (message) => {
    if (ended) return;
    if (!("text" in message)) {
      return refuseLine("error not-text send text messages: one message is one line");
    }
    if (/[\r\n]/.test(message.text)) {
      return refuseLine("error line-break a message is one line: no CR or LF in it");
    }
    if (!toChat.send(message.text)) end(CloseCode.policy, "too-fast"); // the chat is not keeping up
  };
  // A rule broken in a frame: the answer in the protocol's form, then the
  // WebSocket's close (1009 too big, 1007 not UTF-8, 1002 a broken frame).
  ws.onFail = (code) => {
    if (code === CloseCode.tooBig) {
      ws.send(`error line-too-long lines are at most ${MAX_LINE_BYTES} bytes`);
    } else if (code === CloseCode.invalidData) {
      ws.send("error not-utf8 text messages must be UTF-8");
    }
    ended = true;
    toChat.close();
  };

  // Chat → browser.
  const reading = (async () => {
    const decoder = new LineDecoder(options.maxServerLineBytes);
    const buffer = new Uint8Array(16 * 1024);
    let why = "the chat server closed the connection";
    try {
      while (!ended) {
        const n = await conn.read(buffer);
        if (n === null) break;
        for (const line of decoder.push(buffer.subarray(0, n))) ws.send(line);
        if (decoder.error) {
          why = `the chat server broke the protocol: ${decoder.error.message}`;
          break;
        }
        // Backpressure: while too much waits for the browser, read no more.
        // (Not a cut-off at once: in a burst, the queue jumps even for a fast
        // reader.) The chat server's queue for this user fills meanwhile, and
        // lesson 12's rule cuts off a reader that stays slow; one that takes
        // nothing at all for drainTimeoutMs is dropped by the write's timeout.
        if (tooMuchWaiting()) await ws.drained();
      }
    } catch (error) {
      const reason = describeNetError(error);
      if (reason === undefined) throw error; // a bug
      why = `lost the chat server: ${reason}`;
    }
    end(CloseCode.normal, why);
  })();

  const done = ws.closed.then(async () => {
    end(CloseCode.normal, ""); // the browser left: hang up on the chat too
    await Promise.all([toChat.done, reading]);
  });
  return { done, end: (code, reason) => end(code, reason) };
}
