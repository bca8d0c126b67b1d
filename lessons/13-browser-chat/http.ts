/**
 * Lesson 13: just enough HTTP/1.1 to serve the page and open a WebSocket,
 * with a limit on everything one connection can make us do.
 *
 * Why not `Deno.serve`? It has no limit on how many connections it holds, nor
 * on how long a client may take to send a request: a few thousand clients
 * that connect and say nothing (or half a request, "slowloris") hold a file
 * descriptor each for ever, and when the process runs out of descriptors
 * `Deno.serve` crashes it, chat and all (`Uncaught (in promise) Http: Error:
 * Too many open files`). Its options (`port`, `hostname`, `signal`,
 * `onError`, `tcpBacklog`, ...) have nothing to change that. So the page port
 * is served with the same accept loop as the chat (lib/accept.ts), and this
 * small reader of request heads:
 *
 * - a request head is at most `maxHeadBytes` and `maxHeaderLines` lines;
 * - it must arrive whole within `headerTimeoutMs` (a client that sends
 *   one byte a second does not get to keep its connection);
 * - between requests on one connection (keep-alive), a client may stay
 *   quiet `keepAliveMs`, no longer.
 *
 * It reads GET and HEAD, with no request body: that is all the page needs.
 * Lesson 21 builds a fuller HTTP server by hand.
 *
 * @module
 */
import { closeQuietly, utf8Encode } from "../../lib/mod.ts";

/** What a request starts with: `GET /path HTTP/1.1`, then `Name: value` lines. */
export interface RequestHead {
  method: string;
  /** The path as sent, e.g. `/app.js`. */
  target: string;
  /** `1.0` or `1.1`. */
  version: string;
  /** Header names in lower case; a header sent twice has its values joined with `, `. */
  headers: Map<string, string>;
}

/** The limits of {@linkcode RequestReader}. */
export interface HttpLimits {
  /** The longest request head, in bytes. */
  maxHeadBytes: number;
  /** The most lines in a request head. */
  maxHeaderLines: number;
  /** A request head must be complete this long after it started (or the connection opened). */
  headerTimeoutMs: number;
  /** After an answer, the longest wait for the next request on the same connection. */
  keepAliveMs: number;
}

/** A request we answer with an error `status`, then close the connection. */
export class HttpError extends Error {
  /** @param status the answer's status, e.g. 400 */
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The reason phrases of the statuses lessons 13 and 21 answer with. */
export const STATUS_TEXT: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Reads request heads from one connection, one after the other, within the
 * limits. The bytes that came after a head (the first WebSocket frames, or a
 * pipelined request) are kept for what comes next.
 *
 * @example
 * ```ts ignore
 * const reader = new RequestReader(conn, limits);
 * const head = await reader.next(); // null: closed, or quiet too long
 * ```
 */
export class RequestReader {
  #conn: Deno.Conn;
  #limits: HttpLimits;
  #buffer: Uint8Array;
  #length = 0;
  #requests = 0;

  /** @param conn the client's connection; @param limits the limits above */
  constructor(conn: Deno.Conn, limits: HttpLimits) {
    this.#conn = conn;
    this.#limits = limits;
    this.#buffer = new Uint8Array(limits.maxHeadBytes);
  }

  /** The bytes read after the last head, taken away from the reader. */
  takeLeftover(): Uint8Array {
    const rest = this.#buffer.slice(0, this.#length);
    this.#length = 0;
    return rest;
  }

  /**
   * The next request head. Null if the client closed the connection, or
   * said nothing for the time allowed, before a new request began (then the
   * connection is closed with no answer, as every server does). Throws
   * {@linkcode HttpError} for a head that breaks a rule.
   */
  async next(): Promise<RequestHead | null> {
    const limits = this.#limits;
    const first = this.#requests++ === 0;
    // One timer at a time closes the connection (so the pending read fails):
    // for a new connection, the head's deadline at once; on a kept-alive
    // one, the idle limit, then the head's deadline from its first byte.
    let expired = false;
    let started = first || this.#length > 0;
    let timer = setTimeout(expire, started ? limits.headerTimeoutMs : limits.keepAliveMs);
    const conn = this.#conn;
    function expire() {
      expired = true;
      closeQuietly(conn);
    }
    // Where to look for the empty line: only in what is new (and the 2
    // bytes before it), so a client sending a byte at a time costs a byte of
    // work each time, not a scan of everything so far.
    let scanned = 0;
    try {
      while (true) {
        const end = headEnd(this.#buffer.subarray(0, this.#length), Math.max(0, scanned - 2));
        scanned = this.#length;
        if (end !== -1) return this.#parse(end);
        if (this.#length === this.#buffer.length) {
          throw new HttpError(431, `a request head is at most ${limits.maxHeadBytes} bytes`);
        }
        let n: number | null;
        try {
          n = await conn.read(this.#buffer.subarray(this.#length));
        } catch (error) {
          if (expired) return null;
          throw error;
        }
        if (n === null) return null;
        if (!started) {
          started = true;
          clearTimeout(timer);
          timer = setTimeout(expire, limits.headerTimeoutMs);
        }
        this.#length += n;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Parses the head that ends at `end`, and keeps the bytes after it. */
  #parse(end: number): RequestHead {
    const text = new TextDecoder().decode(this.#buffer.subarray(0, end));
    this.#buffer.copyWithin(0, end, this.#length);
    this.#length -= end;
    // Lines end with CRLF; a bare LF is accepted too (someone typing into nc).
    const lines = text.replace(/\r?\n\r?\n$/, "").split(/\r?\n/);
    if (lines.length > this.#limits.maxHeaderLines) {
      throw new HttpError(431, `a request head is at most ${this.#limits.maxHeaderLines} lines`);
    }
    const request = lines[0].match(/^([A-Z]+) (\/\S*) HTTP\/(1\.[01])$/);
    if (!request) throw new HttpError(400, "bad request line");
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      if (colon < 1 || !TOKEN.test(name)) throw new HttpError(400, "bad header line");
      const value = line.slice(colon + 1).trim();
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    return { method: request[1], target: request[2], version: request[3], headers };
  }
}

/** Where the head ends (just after its empty line), or -1; LFs looked for from `from` on. */
function headEnd(bytes: Uint8Array, from: number): number {
  for (let i = bytes.indexOf(10, from); i !== -1; i = bytes.indexOf(10, i + 1)) {
    if (bytes[i + 1] === 10) return i + 2; // LF LF
    if (bytes[i + 1] === 13 && bytes[i + 2] === 10) return i + 3; // LF CR LF
  }
  return -1;
}

/** True if a header's comma-separated list has `token` in it (any case). */
export function hasToken(value: string | undefined, token: string): boolean {
  return (value ?? "").toLowerCase().split(",").some((part) => part.trim() === token);
}

/**
 * The bytes of an answer: status line, headers, `content-length`, body (none
 * for HEAD).
 *
 * @example
 * ```ts ignore
 * encodeResponse(404, { "content-type": "text/plain" }, "not found\n", { keepAlive: true });
 * ```
 */
export function encodeResponse(
  status: number,
  headers: Record<string, string>,
  body: Uint8Array | string,
  options: { keepAlive: boolean; head?: boolean },
): Uint8Array {
  const bytes = typeof body === "string" ? utf8Encode(body) : body;
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ""}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    `content-length: ${bytes.length}`,
    `connection: ${options.keepAlive ? "keep-alive" : "close"}`,
  ];
  const head = utf8Encode(lines.join("\r\n") + "\r\n\r\n");
  if (options.head) return head;
  const answer = new Uint8Array(head.length + bytes.length);
  answer.set(head);
  answer.set(bytes, head.length);
  return answer;
}
