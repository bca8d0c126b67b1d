// deno-lint-ignore-file no-unused-vars prefer-const -- unfinished on purpose: `length` and `at` are yours
/**
 * EXERCISE 13: a frame header's length, and the limit checked on it, are yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 13`:
 * lesson 13's frame checks send your file hand-made frames through the real server.
 *
 * Lesson 13: the WebSocket protocol (RFC 6455), by hand: the handshake's
 * answer, frames in both directions, and one server-side connection.
 *
 * Why by hand? `Deno.upgradeWebSocket` reads each message whole (up to
 * 64 MiB) before the program sees a byte of it: a 4 KiB limit checked after
 * that protects nothing. Here the limit is checked on the frame's HEADER,
 * before any of its payload is buffered: a length field is a promise, and
 * (as in lesson 06) a promise too big is refused before it is kept.
 *
 * - {@linkcode acceptKey}: the `Sec-WebSocket-Accept` of the `101` answer.
 * - {@linkcode encodeFrame}, {@linkcode encodeClose}: server frames
 *   (never masked).
 * - {@linkcode FrameDecoder}: client frames, fed in chunks, as they come:
 *   masked (or refused), lengths checked against the limit, fragments
 *   joined, control frames, UTF-8. It never holds more than one message of
 *   at most the limit, plus one frame header.
 * - {@linkcode WebSocketConnection}: one browser's WebSocket on a TCP
 *   connection: the decoder, a bounded queue of frames to send, pings, and
 *   the two-step close.
 *
 * @module
 */
import { concat } from "@std/bytes";
import { closeQuietly, describeNetError, utf8Encode, writeAllWithTimeout } from "../../lib/mod.ts";

/** The GUID RFC 6455 mixes into the handshake, so only a WebSocket server can answer it. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * The `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`:
 * base64(SHA-1(key + GUID)). It proves the server understood the request as
 * a WebSocket (a plain HTTP server would not know to compute it).
 *
 * @example
 * ```ts ignore
 * await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (RFC 6455, 1.3)
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** The frame types (the header's opcode). */
export const Opcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** Close codes (RFC 6455, section 7.4.1) that lesson 13 uses. */
export const CloseCode = {
  /** All done. */
  normal: 1000,
  /** The server is going away (shutting down), or the peer stopped answering. */
  goingAway: 1001,
  /** The peer broke the protocol (an unmasked frame, a bad opcode, ...). */
  protocolError: 1002,
  /** A text message that is not UTF-8. */
  invalidData: 1007,
  /** A message against the server's rules (`slow-reader`, `too-fast`). */
  policy: 1008,
  /** A message over the size limit. */
  tooBig: 1009,
  /** Try again later (the chat server cannot be reached). */
  tryAgainLater: 1013,
} as const;

/**
 * One server frame, FIN set, never masked (only clients mask).
 *
 * @example
 * ```ts ignore
 * encodeFrame(Opcode.text, utf8Encode("hi")); // Uint8Array [0x81, 0x02, 0x68, 0x69]
 * ```
 */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  // The length takes 7 bits, or 7 + 16, or 7 + 64: the shortest that fits.
  const extra = payload.length < 126 ? 0 : payload.length < 65536 ? 2 : 8;
  const frame = new Uint8Array(2 + extra + payload.length);
  const view = new DataView(frame.buffer);
  frame[0] = 0x80 | opcode; // FIN, no RSV bits
  if (extra === 0) frame[1] = payload.length;
  else if (extra === 2) {
    frame[1] = 126;
    view.setUint16(2, payload.length);
  } else {
    frame[1] = 127;
    view.setBigUint64(2, BigInt(payload.length));
  }
  frame.set(payload, 2 + extra);
  return frame;
}

/** A close frame: the code (2 bytes), then a reason of at most 123 bytes of UTF-8. */
export function encodeClose(code: number, reason: string): Uint8Array {
  let bytes = utf8Encode(reason);
  while (bytes.length > 123) bytes = utf8Encode(reason = reason.slice(0, -1));
  const payload = new Uint8Array(2 + bytes.length);
  new DataView(payload.buffer).setUint16(0, code);
  payload.set(bytes, 2);
  return encodeFrame(Opcode.close, payload);
}

/** What {@linkcode FrameDecoder.push} found in the bytes so far. */
export type FrameEvent =
  | { kind: "text"; text: string }
  | { kind: "binary"; bytes: Uint8Array }
  | { kind: "ping"; payload: Uint8Array }
  | { kind: "pong" }
  | { kind: "close"; code?: number; reason: string }
  /** The peer broke a rule: close with `code`; the decoder reads nothing more. */
  | { kind: "fail"; code: number; reason: string };

/** Close codes a peer may send (RFC 6455, 7.4): the defined ones and 3000-4999. */
function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
    (code >= 3000 && code <= 4999);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes client frames from a byte stream, in chunks of any size.
 *
 * It reads a frame in two steps, as lesson 06 reads a length-prefixed one:
 * the header (2 to 14 bytes) first, whole, then the payload, byte by byte as
 * it comes, unmasked on the way. Every rule is checked on the header, so a
 * frame that breaks one is refused before any of its payload is kept:
 *
 * - the RSV bits are 0 (no extension was agreed) and the opcode is known;
 * - the MASK bit is set: RFC 6455 requires clients to mask (1002 if not);
 * - a control frame (close, ping, pong) is not fragmented and carries at
 *   most 125 bytes;
 * - a continuation frame continues a message, and a new message does not
 *   start in the middle of another;
 * - the message so far plus this frame's length is at most `maxMessageBytes`
 *   (1009 if not), whether it comes in one frame or in many.
 *
 * A text message must be UTF-8 (1007 if not).
 *
 * @example
 * ```ts ignore
 * const decoder = new FrameDecoder(4096);
 * decoder.push(bytes); // [{ kind: "text", text: "hi" }, ...]
 * ```
 */
export class FrameDecoder {
  #max: number;
  /** The header of the frame being read (at most 14 bytes). */
  #header = new Uint8Array(14);
  #headerBytes = 0;
  /** The frame being read, once its header is complete. */
  #frame: { fin: boolean; opcode: number; mask: Uint8Array; length: number } | undefined;
  #payloadRead = 0;
  /** A control frame's payload (at most 125 bytes). */
  #control = new Uint8Array(125);
  /** The message being read: its opcode (0: none), and its bytes so far. */
  #messageOpcode = 0;
  #message: Uint8Array;
  #messageBytes = 0;
  #failed = false;

  /** @param maxMessageBytes the longest message, in bytes, however it is fragmented */
  constructor(maxMessageBytes: number) {
    this.#max = maxMessageBytes;
    this.#message = new Uint8Array(maxMessageBytes);
  }

  /** Adds bytes from the connection; returns what they completed. */
  push(chunk: Uint8Array): FrameEvent[] {
    const events: FrameEvent[] = [];
    let at = 0;
    while (at < chunk.length && !this.#failed) {
      if (this.#frame === undefined) {
        // The header: 2 bytes tell how long it is; take only those bytes.
        const need = this.#headerLength();
        const take = Math.min(need - this.#headerBytes, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerBytes);
        this.#headerBytes += take;
        at += take;
        if (this.#headerBytes < this.#headerLength()) continue; // more to come
        const failure = this.#startFrame();
        if (failure) {
          this.#failed = true;
          events.push(failure);
          break;
        }
      }
      // The payload: as much as this chunk has, unmasked as it is copied.
      const frame = this.#frame!;
      const take = Math.min(frame.length - this.#payloadRead, chunk.length - at);
      const control = frame.opcode >= 0x8;
      const target = control ? this.#control : this.#message;
      const offset = control ? this.#payloadRead : this.#messageBytes;
      for (let i = 0; i < take; i++) {
        target[offset + i] = chunk[at + i] ^ frame.mask[(this.#payloadRead + i) & 3];
      }
      at += take;
      this.#payloadRead += take;
      if (!control) this.#messageBytes += take;
      if (this.#payloadRead === frame.length) {
        const event = this.#endFrame();
        if (event) events.push(event);
        if (event?.kind === "fail") this.#failed = true;
      }
    }
    return events;
  }

  /** How long the header is, from what is known of it so far. */
  #headerLength(): number {
    if (this.#headerBytes < 2) return 2;
    const length = this.#header[1] & 0x7f;
    const mask = this.#header[1] & 0x80 ? 4 : 0;
    return 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + mask;
  }

  /** Checks a complete header; returns a failure, or starts reading the payload. */
  #startFrame(): FrameEvent | undefined {
    const [b0, b1] = this.#header;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const view = new DataView(this.#header.buffer);
    // TODO(exercise): the payload length, and where the mask starts (`at`). The
    // low 7 bits of b1 are the length, or 126: the next 2 bytes are (`at` 4), or
    // 127: the next 8 bytes are (`at` 10). Network byte order (big-endian, as
    // DataView reads by default); all 64 bits count (4 GiB + 9 is not 9); a
    // 64-bit length with its top bit set is refused:
    // return fail(CloseCode.protocolError, "bad frame length").
    let length = 0; // yours: the payload length
    let at = 2; // yours: where the masking key starts
    this.#headerBytes = 0;
    if (b0 & 0x70) return fail(CloseCode.protocolError, "RSV bits set: no extension was agreed");
    if (!(b1 & 0x80)) return fail(CloseCode.protocolError, "client frames must be masked");
    const mask = this.#header.slice(at, at + 4);
    if (opcode >= 0x8) {
      if (opcode > Opcode.pong) return fail(CloseCode.protocolError, `unknown opcode ${opcode}`);
      if (!fin || length > 125) {
        return fail(CloseCode.protocolError, "control frames are one frame of 125 bytes at most");
      }
    } else if (opcode === Opcode.continuation) {
      if (this.#messageOpcode === 0) {
        return fail(CloseCode.protocolError, "a continuation frame with no message to continue");
      }
    } else if (opcode === Opcode.text || opcode === Opcode.binary) {
      if (this.#messageOpcode !== 0) {
        return fail(CloseCode.protocolError, "a new message inside a fragmented one");
      }
      this.#messageOpcode = opcode;
    } else {
      return fail(CloseCode.protocolError, `unknown opcode ${opcode}`);
    }
    // TODO(exercise): the promise checked before it is kept: nothing of this frame
    // is buffered yet. A text, binary or continuation frame (opcode < 0x8) that
    // would make the message (this.#messageBytes so far, plus `length`) longer
    // than this.#max is refused now:
    // return fail(CloseCode.tooBig, `messages are at most ${this.#max} bytes`).
    this.#frame = { fin, opcode, mask, length };
    this.#payloadRead = 0;
    return undefined;
  }

  /** A frame's payload is complete: a control frame, or maybe a whole message. */
  #endFrame(): FrameEvent | undefined {
    const frame = this.#frame!;
    this.#frame = undefined;
    if (frame.opcode === Opcode.ping) {
      return { kind: "ping", payload: this.#control.slice(0, frame.length) };
    }
    if (frame.opcode === Opcode.pong) return { kind: "pong" };
    if (frame.opcode === Opcode.close) {
      const payload = this.#control.subarray(0, frame.length);
      if (payload.length === 0) return { kind: "close", reason: "" };
      if (payload.length === 1) return fail(CloseCode.protocolError, "a close code is 2 bytes");
      const code = (payload[0] << 8) | payload[1];
      if (!validCloseCode(code)) return fail(CloseCode.protocolError, `bad close code ${code}`);
      try {
        return { kind: "close", code, reason: strictUtf8.decode(payload.subarray(2)) };
      } catch {
        return fail(CloseCode.invalidData, "the close reason is not UTF-8");
      }
    }
    if (!frame.fin) return undefined; // more fragments to come
    const bytes = this.#message.slice(0, this.#messageBytes);
    const opcode = this.#messageOpcode;
    this.#messageOpcode = 0;
    this.#messageBytes = 0;
    if (opcode === Opcode.binary) return { kind: "binary", bytes };
    try {
      return { kind: "text", text: strictUtf8.decode(bytes) };
    } catch {
      return fail(CloseCode.invalidData, "text messages must be UTF-8");
    }
  }
}

function fail(code: number, reason: string): FrameEvent {
  return { kind: "fail", code, reason };
}

/** Options for a {@linkcode WebSocketConnection}. */
export interface WebSocketOptions {
  /** The longest message the peer may send (its frames are checked against it). */
  maxMessageBytes: number;
  /** A ping this often; a peer that sent nothing since the last one is dropped. */
  pingIntervalMs: number;
  /** A write that makes no progress for this long drops the peer (it is not reading). */
  writeTimeoutMs: number;
  /** After our close frame, the longest wait for the peer's. */
  closeTimeoutMs: number;
  /** Bytes that arrived with the HTTP request, after its head (the first frames). */
  leftover?: Uint8Array;
  /** Bytes to write before any frame: the handshake's `101` answer. */
  preamble?: Uint8Array;
}

/** A message from the peer: text, or binary. */
export type Message = { text: string } | { bytes: Uint8Array };

/**
 * One WebSocket, server side, on a TCP connection whose handshake is done.
 * The same few members as a browser's `WebSocket`: `onMessage`, `send`,
 * `close`, `bufferedAmount`, and a promise for the end (`closed`). As in the
 * browser, nothing is delivered before the code that created it has run, so
 * set `onMessage` right after `new`.
 *
 * @example
 * ```ts ignore
 * const ws = new WebSocketConnection(conn, { maxMessageBytes: 4096, ... });
 * ws.onMessage = (message) => console.log(message);
 * ws.send("hello");
 * ws.close(CloseCode.normal, "bye");
 * const { code, reason } = await ws.closed;
 * ```
 */
export class WebSocketConnection {
  #conn: Deno.Conn;
  #options: WebSocketOptions;
  #queue: Uint8Array[] = [];
  /** The answer to the latest ping, if it is not written yet. */
  #pong: Uint8Array | undefined;
  #queued = 0;
  #wakeWriter: (() => void) | undefined;
  #drained: (() => void)[] = [];
  #closeSent = false;
  #closeReceived = false;
  /** The peer broke a rule: we read nothing more of what it sends. */
  #failed = false;
  #halfClosed = false;
  #heard = true;
  #ping: ReturnType<typeof setInterval>;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #gone = false;
  /** How it ended: the close code and reason sent or received (1006: none, the TCP connection just ended). */
  readonly closed: Promise<{ code: number; reason: string }>;
  #end = { code: 1006, reason: "" };

  /** Each text or binary message. */
  onMessage: (message: Message) => void = () => {};
  /**
   * The peer broke a rule (`code`: 1002, 1007 or 1009): called just before
   * our close frame is queued, to send a last message.
   */
  onFail: (code: number, reason: string) => void = () => {};

  /** Starts reading frames from `conn` and writing what `send` queues. */
  constructor(conn: Deno.Conn, options: WebSocketOptions) {
    this.#conn = conn;
    this.#options = options;
    if (options.preamble) this.#push(options.preamble);
    // A ping every interval. The browser answers with a pong by itself; a
    // peer that sent nothing at all since the previous ping is gone.
    this.#ping = setInterval(() => {
      if (!this.open) return; // closing: closeTimeoutMs bounds that
      if (!this.#heard) return this.#destroy();
      this.#heard = false;
      this.#push(encodeFrame(Opcode.ping, new Uint8Array(0)));
    }, options.pingIntervalMs);
    const writing = this.#writeLoop();
    this.closed = Promise.all([this.#readLoop(), writing]).then(() => this.#end);
  }

  /** True until a close frame was sent or the connection ended. */
  get open(): boolean {
    return !this.#closeSent && !this.#gone;
  }

  /** Bytes queued for the peer and not yet written (as the browser's `bufferedAmount`). */
  get bufferedAmount(): number {
    return this.#queued;
  }

  /** Queues one text message (never waits; see `bufferedAmount` and `drained`). */
  send(text: string): void {
    if (this.open) this.#push(encodeFrame(Opcode.text, utf8Encode(text)));
  }

  /**
   * Resolves once nothing is queued any more (or the connection ended): the
   * way to stop producing while a peer is behind.
   */
  drained(): Promise<void> {
    if (this.#queued === 0 || this.#gone) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /**
   * Starts the closing handshake: our close frame goes after what is queued,
   * then we wait (at most `closeTimeoutMs`) for the peer's, and close the TCP
   * connection.
   */
  close(code: number, reason: string): void {
    if (!this.open) return;
    this.#closeSent = true;
    this.#end = { code, reason };
    this.#takePong(); // nothing may follow a close frame
    this.#push(encodeClose(code, reason));
    if (this.#closeReceived) return; // the write loop closes once it is out
    this.#closeTimer = setTimeout(() => this.#destroy(), this.#options.closeTimeoutMs);
  }

  /** Moves a waiting pong into the queue (it is already counted in #queued). */
  #takePong(): void {
    if (this.#pong) this.#queue.push(this.#pong);
    this.#pong = undefined;
  }

  #push(frame: Uint8Array): void {
    this.#queue.push(frame);
    this.#queued += frame.length;
    this.#wakeWriter?.();
  }

  /** Ends the TCP connection now (both loops end with it). */
  #destroy(): void {
    if (this.#gone) return;
    this.#gone = true;
    clearInterval(this.#ping);
    clearTimeout(this.#closeTimer);
    this.#wakeWriter?.();
    for (const resolve of this.#drained.splice(0)) resolve();
    closeQuietly(this.#conn);
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder(this.#options.maxMessageBytes);
    const buffer = new Uint8Array(16 * 1024);
    let chunk = this.#options.leftover ?? new Uint8Array(0);
    await Promise.resolve(); // the creator's code first (it sets onMessage)
    try {
      while (!this.#gone) {
        if (chunk.length > 0 && !this.#failed) {
          this.#heard = true;
          for (const event of decoder.push(chunk)) this.#handle(event);
        }
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        chunk = buffer.subarray(0, n);
      }
    } catch (error) {
      if (describeNetError(error) === undefined) throw error; // a bug
    }
    this.#destroy();
  }

  #handle(event: FrameEvent): void {
    if (this.#closeReceived) return;
    switch (event.kind) {
      case "text":
        if (this.open) this.onMessage({ text: event.text });
        break;
      case "binary":
        if (this.open) this.onMessage({ bytes: event.bytes });
        break;
      case "ping":
        // At most one pong waits: a peer that sends pings and reads nothing
        // would otherwise fill our memory with answers. RFC 6455 (5.5.3)
        // allows answering only the latest ping.
        if (this.open) {
          if (this.#pong) this.#queued -= this.#pong.length;
          this.#pong = encodeFrame(Opcode.pong, event.payload);
          this.#queued += this.#pong.length;
          this.#wakeWriter?.();
        }
        break;
      case "pong":
        break;
      case "close":
        // The peer's half of the goodbye: answer with the same code (if we
        // have not said ours yet), and close once it is written.
        this.#closeReceived = true;
        if (this.open) this.close(event.code ?? CloseCode.normal, event.reason);
        else {
          clearTimeout(this.#closeTimer);
          this.#wakeWriter?.();
        }
        break;
      case "fail":
        // The decoder reads nothing more from now on. Our close frame goes
        // out, then our end of the TCP connection (FIN): a browser sees the
        // reason and hangs up at once; what a hostile peer still sends (the
        // rest of its 60 MiB) is read and thrown away until it stops, or
        // until closeTimeoutMs. Closing with unread bytes would reset the
        // connection, and the peer might never see why.
        this.#failed = true;
        if (this.open) {
          this.onFail(event.code, event.reason);
          this.close(event.code, event.reason);
        }
        break;
    }
  }

  async #writeLoop(): Promise<void> {
    try {
      while (!this.#gone) {
        this.#takePong();
        if (this.#queue.length === 0) {
          for (const resolve of this.#drained.splice(0)) resolve();
          // Both close frames exchanged, all written: the WebSocket is over.
          if (this.#closeSent && this.#closeReceived) break;
          if (this.#halfClosed) return; // the read loop ends it (EOF, or closeTimeoutMs)
          await new Promise<void>((resolve) => this.#wakeWriter = resolve);
          this.#wakeWriter = undefined;
          continue;
        }
        // Everything queued, in one write.
        const frames = this.#queue;
        this.#queue = [];
        const data = frames.length === 1 ? frames[0] : concat(frames);
        await writeAllWithTimeout(this.#conn, data, this.#options.writeTimeoutMs, "the browser");
        this.#queued -= data.length;
        if (this.#queue.length === 0 && this.#failed && this.#closeSent) {
          await this.#conn.closeWrite(); // our FIN, after the close frame
          this.#halfClosed = true;
        }
      }
    } catch (error) {
      if (describeNetError(error) === undefined) throw error; // a bug
    }
    this.#destroy();
  }
}
