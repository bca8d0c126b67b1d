// deno-lint-ignore-file no-unused-vars require-await -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 21: the header-reading loop is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 21`:
 * lesson 21's own tests check your file in the lesson's place.
 *
 * Lesson 21: reading HTTP/1.1 requests from a byte stream, by hand.
 *
 * A request is lines, then maybe a body:
 *
 * ```text
 * POST /echo HTTP/1.1\r\n          the request line: METHOD TARGET VERSION
 * Host: 127.0.0.1:65421\r\n        headers: Name: value
 * Content-Length: 5\r\n
 * \r\n                             an empty line ends the head
 * hello                            the body: exactly Content-Length bytes
 * ```
 *
 * The head is lesson 05's line framing (CRLF lines, each with a length
 * limit); the body is lesson 06's length prefix, written in decimal in a
 * header, or a series of chunks that each carry their own length in hex.
 * Everything a client sends is bounded: a line (8 KiB), the head (100
 * headers, 16 KiB), the body (64 KiB). A request over a limit gets 431 or
 * 413; one that breaks a rule gets 400. Either way the connection is closed
 * after the answer: once the framing is in doubt, we cannot know where the
 * next request starts.
 *
 * @module
 */
// (Written so, this path works from exercises/21-http/ too.)
import { HttpError } from "../../lessons/13-browser-chat/http.ts";
import type { ByteConn } from "../../lib/mod.ts";

export { HttpError };

/** The limits on what one request may make the server read. */
export interface RequestLimits {
  /** The longest line of a head (the request line, a header, a chunk size), CRLF not counted. */
  maxLineBytes: number;
  /** The most header lines in a head. */
  maxHeaders: number;
  /** The most bytes in a head, CRLFs included. */
  maxHeadBytes: number;
  /** The largest body, in bytes (Content-Length, or all the chunks together). */
  maxBodyBytes: number;
}

/** The limits the lesson's server uses. */
export const DEFAULT_LIMITS: RequestLimits = {
  maxLineBytes: 8 * 1024,
  maxHeaders: 100,
  maxHeadBytes: 16 * 1024,
  // 64 KiB: plenty for /echo, and 1,000 connections uploading at once hold
  // at most 64 MiB of bodies (1 MiB each would be 1 GiB).
  maxBodyBytes: 64 * 1024,
};

/** A request, as the server parsed it. */
export interface Request {
  method: string;
  /** The target as sent, e.g. `/style.css?v=2`. */
  target: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  version: string;
  /** The headers in the order they came, names as sent. */
  headers: [string, string][];
  /** The body (empty if there was none). */
  body: Uint8Array;
}

/** The value of header `name` (any case); repeated headers joined with `, `. */
export function header(request: Pick<Request, "headers">, name: string): string | undefined {
  const wanted = name.toLowerCase();
  const values = request.headers.filter(([n]) => n.toLowerCase() === wanted).map(([, v]) => v);
  return values.length === 0 ? undefined : values.join(", ");
}

/** A method or header name: RFC 9110's `token`. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value may hold visible characters, spaces and tabs; no other control character. */
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const LF = 10;
const CR = 13;

/**
 * The bytes of one connection, read in chunks into one buffer, handed out
 * as lines (for the head) or as counted bytes (for a body). What is left
 * after a request is the start of the next one (pipelining).
 *
 * @example
 * ```ts ignore
 * const reader = new ConnReader(conn);
 * const request = await readRequest(reader, DEFAULT_LIMITS); // null: closed before a request
 * ```
 */
export class ConnReader {
  #conn: Pick<ByteConn, "read">;
  // Twice the longest line: a line always fits, with room for the next read.
  #buffer = new Uint8Array(2 * DEFAULT_LIMITS.maxLineBytes);
  #start = 0;
  #end = 0;
  /** Bytes read from the connection in all. */
  bytesRead = 0;
  /** Called when the first byte of a new request arrives (starts the header timer). */
  onData?: () => void;

  /** @param conn where the bytes come from */
  constructor(conn: Pick<ByteConn, "read">) {
    this.#conn = conn;
  }

  /** How many bytes are read but not used yet (the start of a pipelined request). */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Reads more bytes into the buffer; false at the end of the stream. */
  async #fill(): Promise<boolean> {
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    this.bytesRead += n;
    this.onData?.();
    return true;
  }

  /**
   * The next line without its CRLF (a bare LF is accepted too), or null if
   * the stream ended before any byte of it. A line over `maxBytes` is
   * `tooLong` (an HttpError); a stream that ends inside a line is a 400.
   */
  async line(maxBytes: number, tooLong: HttpError): Promise<Uint8Array | null> {
    let scanned = this.#start; // where to look for the LF: only in bytes not looked at yet
    while (true) {
      const lf = this.#buffer.subarray(0, this.#end).indexOf(LF, scanned);
      if (lf !== -1) {
        let end = lf;
        if (end > this.#start && this.#buffer[end - 1] === CR) end--;
        if (end - this.#start > maxBytes) throw tooLong;
        const line = this.#buffer.slice(this.#start, end);
        this.#start = lf + 1;
        return line;
      }
      // No LF yet. Over the limit already (one byte more may be the CR)?
      const pending = this.#end - this.#start;
      if (pending > maxBytes + 1) throw tooLong;
      if (!await this.#fill()) {
        if (pending === 0) return null;
        throw new HttpError(400, "the connection ended in the middle of a line");
      }
      scanned = this.#start + pending; // #fill moved the bytes to the front
    }
  }

  /**
   * Everything until the other side closes (a body with no length), at most
   * `maxBytes`: more is an error, not a bigger buffer.
   */
  async rest(maxBytes: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    do {
      total += this.#end - this.#start;
      if (total > maxBytes) throw new HttpError(413, `a body over ${maxBytes} bytes`);
      parts.push(this.#buffer.slice(this.#start, this.#end));
      this.#start = this.#end;
    } while (await this.#fill());
    const out = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** Exactly `length` bytes (a body or a chunk); a stream that ends first is a 400. */
  async bytes(length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      if (this.#end === this.#start && !await this.#fill()) {
        throw new HttpError(400, `the body ended after ${got} of ${length} bytes`);
      }
      const take = Math.min(length - got, this.#end - this.#start);
      out.set(this.#buffer.subarray(this.#start, this.#start + take), got);
      this.#start += take;
      got += take;
    }
    return out;
  }
}

/**
 * Reads one request: its head, line by line, within the limits, then its
 * body as the headers frame it (`onHead` is told when the head is in). Null if the client closed (or sent only
 * empty lines) before a request began. Throws {@linkcode HttpError} with the
 * status to answer.
 */
export async function readRequest(
  reader: ConnReader,
  limits: RequestLimits = DEFAULT_LIMITS,
  onHead?: (request: Request) => void,
): Promise<Request | null> {
  const lineTooLong = new HttpError(431, `a line is longer than ${limits.maxLineBytes} bytes`);
  // The request line. A few empty lines before it are allowed (RFC 9112
  // section 2.2: some clients send an extra CRLF after a body).
  let first: Uint8Array | null;
  let empties = 0;
  do {
    first = await reader.line(limits.maxLineBytes, lineTooLong);
    if (first === null) return null;
  } while (first.length === 0 && ++empties < 4);
  const headBytes = first.length + 2;
  const start = headText(first).match(/^(\S+) (\S+) (HTTP\/\d\.\d)$/);
  if (!start) throw new HttpError(400, "the request line is not METHOD TARGET HTTP/x.y");
  const [, method, target, version] = start;
  if (!TOKEN.test(method)) throw new HttpError(400, "the method is not a token");
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    throw new HttpError(505, `${version} is not spoken here: HTTP/1.1 or HTTP/1.0`);
  }

  const headers = await readHeaders(reader, limits, headBytes);
  const request: Request = { method, target, version, headers, body: new Uint8Array(0) };
  // Host says which site the client wants (one address may serve many).
  // HTTP/1.1 requires exactly one (RFC 9112 section 3.2).
  const hosts = headers.filter(([n]) => n.toLowerCase() === "host").length;
  if (version === "HTTP/1.1" && hosts !== 1) {
    throw new HttpError(400, hosts === 0 ? "no Host header" : "more than one Host header");
  }
  onHead?.(request);
  request.body = await readBody(reader, request, limits);
  return request;
}

/**
 * The header lines of a head, up to its empty line, within the limits
 * (`headBytes`: what the first line already used). The client reads an
 * answer's headers with it too.
 */
export async function readHeaders(
  reader: ConnReader,
  limits: RequestLimits,
  headBytes: number,
): Promise<[string, string][]> {
  const lineTooLong = new HttpError(431, `a line is longer than ${limits.maxLineBytes} bytes`);
  const headers: [string, string][] = [];
  // TODO(exercise): read the header lines up to the empty line, and return them.
  // Each line: `await reader.line(limits.maxLineBytes, lineTooLong)` (null: the
  // connection ended inside the head, a 400). Count every line's bytes + 2 (its
  // CRLF) into headBytes: over limits.maxHeadBytes is a 431, and so is a header
  // past limits.maxHeaders. A line that starts with a space or a tab is a folded
  // header (400); `Name: value` needs a TOKEN name right before the colon (400);
  // trim spaces and tabs around the value, refuse a BAD_VALUE (400), and push
  // [name, value]. headText(bytes) turns a line into text.
  return headers;
}

/** A line of a head as text: UTF-8, or a 400. */
export function headText(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "a head line is not UTF-8");
  }
}

/** Reads the body that the headers announce: by Content-Length, by chunks, or none. */
async function readBody(
  reader: ConnReader,
  request: Request,
  limits: RequestLimits,
): Promise<Uint8Array> {
  const te = header(request, "transfer-encoding");
  const cl = header(request, "content-length");
  // Two ways to say where the body ends, and a proxy in front that believes
  // the other one: the rest of this body is a second request to us, hidden
  // from the proxy ("request smuggling"). So both at once is refused.
  if (te !== undefined && cl !== undefined) {
    throw new HttpError(400, "both Transfer-Encoding and Content-Length");
  }
  if (te !== undefined) {
    if (te.toLowerCase() !== "chunked" || request.version === "HTTP/1.0") {
      throw new HttpError(400, `Transfer-Encoding ${JSON.stringify(te)}: only chunked is read`);
    }
    return await readChunks(reader, limits);
  }
  if (cl === undefined) return new Uint8Array(0); // a request without a body
  // `Content-Length: 5, 5` (or the header twice) is allowed if every value is
  // the same; two different lengths are the smuggling above.
  const values = new Set(cl.split(",").map((v) => v.trim()));
  if (values.size !== 1) throw new HttpError(400, "two different Content-Length values");
  const [value] = values;
  if (!/^\d{1,15}$/.test(value)) throw new HttpError(400, "Content-Length is not a number");
  const length = Number(value);
  if (length > limits.maxBodyBytes) {
    throw new HttpError(413, `a body of ${length} bytes: the limit is ${limits.maxBodyBytes}`);
  }
  return await reader.bytes(length);
}

/**
 * A chunked body: chunks of `SIZE-IN-HEX\r\n DATA \r\n`, ended by a chunk of
 * size 0, then optional trailer lines, then an empty line.
 */
export async function readChunks(reader: ConnReader, limits: RequestLimits): Promise<Uint8Array> {
  const tooLong = new HttpError(400, "a chunk line is too long");
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const line = await reader.line(limits.maxLineBytes, tooLong);
    if (line === null) throw new HttpError(400, "the connection ended inside a chunked body");
    // The size, then maybe `;name=value` extensions, which we ignore.
    const size = new TextDecoder().decode(line).match(/^([0-9A-Fa-f]{1,8})[ \t]*(;.*)?$/);
    if (!size) throw new HttpError(400, "a chunk size is not hexadecimal");
    const length = parseInt(size[1], 16);
    if (length === 0) break; // the last chunk
    total += length;
    if (total > limits.maxBodyBytes) {
      throw new HttpError(413, `a chunked body over ${limits.maxBodyBytes} bytes`);
    }
    chunks.push(await reader.bytes(length));
    const end = await reader.line(0, new HttpError(400, "a chunk is longer than its size"));
    if (end === null) throw new HttpError(400, "the connection ended inside a chunked body");
  }
  // Trailer fields (rare), up to the empty line: read within the head's limits, and dropped.
  let trailerBytes = 0;
  while (true) {
    const line = await reader.line(limits.maxLineBytes, tooLong);
    if (line === null) throw new HttpError(400, "the connection ended inside the trailers");
    if (line.length === 0) break;
    trailerBytes += line.length + 2;
    if (trailerBytes > limits.maxHeadBytes) throw new HttpError(431, "the trailers are too long");
  }
  const body = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}
