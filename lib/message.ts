/**
 * The application message of lesson 07: a fixed binary header, then JSON.
 *
 * Real protocols (PNG chunks, DNS, Kafka, Postgres) put a small fixed-size
 * binary header before each message. Ours has 16 bytes, four unsigned 32-bit
 * big-endian numbers (big-endian is "network byte order", see `frames.ts`):
 *
 * ```text
 * offset  size  field
 *      0     4  magic   always 0x12345678: "this is our protocol"
 *      4     4  type    1 request, 2 response, 3 error
 *      8     4  length  body length in bytes
 *     12     4  crc     CRC-32 of the body (see crc32.ts)
 *     16     n  body    UTF-8 JSON
 * ```
 *
 * Each field catches a different problem:
 *
 * - magic: a peer that speaks another protocol (or an HTTP client, or a
 *   stream that got out of step) is noticed at once;
 * - length: frames the body (and, checked against a limit before anything is
 *   allocated, stops a peer from making us buffer gigabytes);
 * - crc: a body damaged on the way is noticed instead of being acted on.
 *
 * Some problems leave the stream usable and some do not. A bad CRC or bad
 * JSON spoils one message only: the header said how long the body was, so
 * the decoder skips it and goes on with the next message. A bad magic number
 * or an over-limit length means we no longer know where the next message
 * starts (or refuse to wait for it): that is fatal, and the connection must
 * be closed. {@linkcode MessageDecoder.push} therefore returns messages and
 * errors together, in the order they were found on the wire, and each
 * {@linkcode ProtocolError} says whether it is `fatal`.
 *
 * {@linkcode MessageDecoder} works like lesson 06's `FrameDecoder` with a
 * bigger header: collect 16 header bytes, check them (`#checkHeader`),
 * collect the body, then check the CRC and parse the JSON (`#finish`). It
 * shares the fast path of `frames.ts` for the messages that lie entirely
 * inside one chunk (`copyCompleteFrames`).
 *
 * The type field is not checked: a message of an unknown type is decoded
 * like any other, and it is up to the server to answer "unknown type" with
 * an error message. That keeps the decoder independent of what the
 * application does with the messages.
 *
 * @module
 */

import { crc32 } from "./crc32.ts";
import { LessonError } from "./errors.ts";
import { copyCompleteFrames } from "./frames.ts";
import { type ByteConn, readChunks, type ReadLimits } from "./io.ts";
import { utf8Decode } from "./text.ts";

// Re-exported so that this module's documentation is complete on its own.
export { LessonError } from "./errors.ts";
export type { ByteConn, ReadLimits } from "./io.ts";

/**
 * The first 4 bytes of every message (`12 34 56 78` on the wire).
 *
 * @example
 * ```ts
 * import { encodeMessage, MAGIC } from "./message.ts";
 * const bytes = encodeMessage(1, {});
 * new DataView(bytes.buffer).getUint32(0) === MAGIC; // true
 * ```
 */
export const MAGIC = 0x12345678;

/**
 * The size of the header: magic, type, length and CRC, 4 bytes each.
 *
 * @example
 * ```ts
 * import { encodeMessage, HEADER_BYTES } from "./message.ts";
 * encodeMessage(1, "hi").length; // 20: HEADER_BYTES + 4 (the body is "hi", quotes included)
 * ```
 */
export const HEADER_BYTES = 16;

/**
 * The default largest body {@linkcode MessageDecoder} accepts (1 MiB).
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_BODY_BYTES, MessageDecoder } from "./message.ts";
 * const decoder = new MessageDecoder(DEFAULT_MAX_BODY_BYTES / 16); // 64 KiB bodies
 * ```
 */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * The message types of lesson 07. Other numbers can arrive too (see the
 * module documentation): {@linkcode messageTypeName} names them "unknown".
 *
 * @example
 * ```ts
 * import { encodeMessage, MessageType } from "./message.ts";
 * encodeMessage(MessageType.Request, { op: "add", args: [1, 2] });
 * ```
 */
export const MessageType = {
  /** A client asks for something. */
  Request: 1,
  /** The server's answer to a request. */
  Response: 2,
  /** The server could not answer: the body says why. */
  Error: 3,
} as const;

/**
 * One of the known message types: 1, 2 or 3.
 *
 * @example
 * ```ts
 * import { MessageType } from "./message.ts";
 * const type: MessageType = MessageType.Response; // 2
 * ```
 */
export type MessageType = typeof MessageType[keyof typeof MessageType];

/**
 * A decoded message.
 *
 * @example
 * ```ts
 * import { encodeMessage, type Message, MessageDecoder } from "./message.ts";
 * const [message] = new MessageDecoder().push(encodeMessage(1, { n: 1 })) as Message[];
 * message.type; // 1
 * message.body; // { n: 1 }
 * message.bytes.length; // 23: 16 header bytes and the 7 bytes of {"n":1}
 * ```
 */
export interface Message {
  /** The type field: usually a {@linkcode MessageType}, but not checked. */
  type: number;
  /** The parsed JSON body. */
  body: unknown;
  /**
   * The whole message as it arrived, header and body, for hex dumps. A
   * copy: it does not share memory with the chunks pushed, but messages
   * that arrived in the same chunk share one `ArrayBuffer` (see
   * `frames.ts`).
   */
  bytes: Uint8Array;
}

/**
 * What went wrong, as a short code a program can test:
 *
 * - `"bad-magic"`: the first 4 bytes are not {@linkcode MAGIC} (fatal);
 * - `"too-large"`: the length is over the decoder's limit (fatal);
 * - `"bad-checksum"`: the body's CRC-32 does not match the header (skipped);
 * - `"bad-json"`: the body is not UTF-8 JSON (skipped);
 * - `"truncated"`: the stream ended in the middle of a message (fatal).
 *
 * @example
 * ```ts
 * import type { ProtocolErrorCode } from "./message.ts";
 * const code: ProtocolErrorCode = "bad-checksum";
 * ```
 */
export type ProtocolErrorCode =
  | "bad-magic"
  | "too-large"
  | "bad-checksum"
  | "bad-json"
  | "truncated";

/**
 * A peer broke the message protocol. `fatal` errors mean the stream cannot
 * be read any further; after the others, decoding goes on with the next
 * message.
 *
 * @example
 * ```ts
 * import { encodeMessage, MessageDecoder, ProtocolError } from "./message.ts";
 * const bytes = encodeMessage(1, { n: 1 });
 * bytes[bytes.length - 1] ^= 0xff; // damage the body
 * const [item] = new MessageDecoder().push(bytes);
 * if (item instanceof ProtocolError) console.log(item.code, item.fatal); // bad-checksum false
 * ```
 */
export class ProtocolError extends LessonError {
  /** What went wrong. */
  code: ProtocolErrorCode;
  /** True if the stream cannot be decoded any further: close the connection. */
  fatal: boolean;
  /**
   * The bytes the error is about, for hex dumps: the header for
   * `"bad-magic"` and `"too-large"`, the whole message for `"bad-checksum"`
   * and `"bad-json"`, what had arrived for `"truncated"`.
   */
  bytes: Uint8Array;

  /**
   * Creates the error. Whether it is fatal follows from the code.
   *
   * @param code what went wrong
   * @param message one line, for a person
   * @param bytes the bytes the error is about
   */
  constructor(code: ProtocolErrorCode, message: string, bytes: Uint8Array) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.fatal = code !== "bad-checksum" && code !== "bad-json";
    this.bytes = bytes;
  }
}

const utf8Encoder = new TextEncoder();

/**
 * Encodes a message: the 16-byte header, then `value` as UTF-8 JSON. Throws
 * a `TypeError` if `value` cannot be written as JSON (`undefined`, a
 * function, a BigInt) and a `RangeError` if `type` is not a whole number
 * from 0 to 2^32 - 1.
 *
 * @example
 * ```ts
 * import { encodeMessage, MessageType } from "./message.ts";
 * encodeMessage(MessageType.Request, { op: "echo", text: "hi" });
 * ```
 */
export function encodeMessage(type: number, value: unknown): Uint8Array {
  if (!Number.isInteger(type) || type < 0 || type > 0xffff_ffff) {
    throw new RangeError(`message type must be a whole number from 0 to 4294967295, got ${type}`);
  }
  const json = JSON.stringify(value) as string | undefined;
  if (json === undefined) throw new TypeError(`${typeof value} cannot be encoded as JSON`);
  const body = utf8Encoder.encode(json);
  const bytes = new Uint8Array(HEADER_BYTES + body.length);
  const header = new DataView(bytes.buffer);
  header.setUint32(0, MAGIC); // DataView writes big-endian unless told otherwise
  header.setUint32(4, type);
  header.setUint32(8, body.length);
  header.setUint32(12, crc32(body));
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

/**
 * Splits a byte stream into messages, whatever the chunk boundaries.
 *
 * `push` returns what each chunk completed, in wire order: a
 * {@linkcode Message}, or a {@linkcode ProtocolError} for a message that was
 * wrong. It does not throw for bad input. After a non-fatal error (bad
 * checksum, bad JSON) decoding goes on with the next message; a fatal error
 * (bad magic, too large) is the last item, and every later `push` throws it.
 *
 * @example
 * ```ts
 * import { encodeMessage, MessageDecoder, ProtocolError } from "./message.ts";
 * const decoder = new MessageDecoder();
 * for (const item of decoder.push(encodeMessage(1, { op: "echo", text: "hi" }))) {
 *   if (item instanceof ProtocolError) {
 *     console.log(`bad message: ${item.message}`);
 *     if (item.fatal) break; // and close the connection
 *   } else {
 *     console.log(item.type, item.body); // 1 { op: "echo", text: "hi" }
 *   }
 * }
 * const last = decoder.end(); // undefined: the stream ended between messages
 * ```
 */
export class MessageDecoder {
  #maxBodyBytes: number;
  /** The header being received, as it arrives. */
  #header = new Uint8Array(HEADER_BYTES);
  #headerFilled = 0;
  /** The message being received, header and body, allocated once its length is known. */
  #message: Uint8Array | undefined;
  #messageFilled = 0;
  /** The fatal error, once there has been one. */
  #failed: ProtocolError | undefined;

  /**
   * Creates a decoder with nothing buffered.
   *
   * @param maxBodyBytes the largest body accepted, in bytes (default 1 MiB)
   * @example
   * ```ts
   * import { MessageDecoder } from "./message.ts";
   * const decoder = new MessageDecoder(64 * 1024); // bodies of up to 64 KiB
   * ```
   */
  constructor(maxBodyBytes: number = DEFAULT_MAX_BODY_BYTES) {
    this.#maxBodyBytes = maxBodyBytes;
  }

  /**
   * Bytes received, header included, that are not yet part of a complete
   * message. Less than 16 + the limit.
   *
   * @example
   * ```ts
   * import { encodeMessage, MessageDecoder } from "./message.ts";
   * const decoder = new MessageDecoder();
   * decoder.push(encodeMessage(1, "hello").subarray(0, 20));
   * decoder.bufferedBytes; // 20
   * ```
   */
  get bufferedBytes(): number {
    return this.#message === undefined ? this.#headerFilled : this.#messageFilled;
  }

  /**
   * Adds a chunk; returns the messages and errors it completed, in order
   * (possibly none). The chunk is not kept, so the caller may reuse it.
   *
   * @example
   * ```ts
   * import { encodeMessage, MessageDecoder } from "./message.ts";
   * const wire = encodeMessage(2, { ok: true });
   * const decoder = new MessageDecoder();
   * decoder.push(wire.subarray(0, 10)); // [] (header incomplete)
   * decoder.push(wire.subarray(10)); // [{ type: 2, body: { ok: true }, bytes: ... }]
   * ```
   */
  push(chunk: Uint8Array): (Message | ProtocolError)[] {
    if (this.#failed) throw this.#failed;
    const items: (Message | ProtocolError)[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#message === undefined && this.#headerFilled === 0) {
        // The fast path of frames.ts. Without it the code below does the same, slower.
        for (const message of copyCompleteFrames(chunk, offset, HEADER_BYTES, this.#size)) {
          items.push(this.#finish(message));
          offset += message.length;
        }
        if (offset === chunk.length) break;
      }
      if (this.#message === undefined) {
        // Between messages: collect the 16-byte header, maybe over several chunks...
        const piece = chunk.subarray(offset, offset + HEADER_BYTES - this.#headerFilled);
        this.#header.set(piece, this.#headerFilled);
        this.#headerFilled += piece.length;
        offset += piece.length;
        if (this.#headerFilled < HEADER_BYTES) break; // the chunk is used up
        this.#headerFilled = 0;
        // ... check it before allocating anything or waiting for the body ...
        const headerView = new DataView(this.#header.buffer);
        const error = this.#checkHeader(headerView, 0);
        if (error) {
          this.#failed = error;
          items.push(error);
          break;
        }
        this.#message = new Uint8Array(HEADER_BYTES + headerView.getUint32(8));
        this.#message.set(this.#header);
        this.#messageFilled = HEADER_BYTES;
      }
      // ... then copy as much of its body as this chunk holds.
      const piece = chunk.subarray(offset, offset + this.#message.length - this.#messageFilled);
      this.#message.set(piece, this.#messageFilled);
      this.#messageFilled += piece.length;
      offset += piece.length;
      if (this.#messageFilled === this.#message.length) {
        items.push(this.#finish(this.#message));
        this.#message = undefined;
      }
    }
    return items;
  }

  /**
   * Call at end of stream. Returns a `"truncated"` {@linkcode ProtocolError}
   * if the stream stopped in the middle of a message, or `undefined`.
   *
   * @example
   * ```ts
   * import { encodeMessage, MessageDecoder } from "./message.ts";
   * const decoder = new MessageDecoder();
   * decoder.push(encodeMessage(1, "hello").subarray(0, 5));
   * decoder.end()?.code; // "truncated"
   * ```
   */
  end(): ProtocolError | undefined {
    if (this.#failed || this.bufferedBytes === 0) return undefined;
    const received = this.#message === undefined
      ? this.#header.slice(0, this.#headerFilled)
      : this.#message.slice(0, this.#messageFilled);
    const expected = this.#message?.length ?? HEADER_BYTES;
    return new ProtocolError(
      "truncated",
      `the stream ended in the middle of a message (${received.length} of ${expected} bytes received)`,
      received,
    );
  }

  /** The size of the message at `at`, header included, or 0 if its header is bad. */
  #size = (view: DataView, at: number): number =>
    this.#checkHeader(view, at) ? 0 : HEADER_BYTES + view.getUint32(at + 8);

  /** Returns the fatal error the header at `at` shows, if any. */
  #checkHeader(view: DataView, at: number): ProtocolError | undefined {
    const header = () => new Uint8Array(view.buffer, view.byteOffset + at, HEADER_BYTES).slice();
    const magic = view.getUint32(at);
    if (magic !== MAGIC) {
      return new ProtocolError(
        "bad-magic",
        `bad magic number ${hex32(magic)} (expected ${hex32(MAGIC)}): not our protocol`,
        header(),
      );
    }
    const length = view.getUint32(at + 8);
    if (length > this.#maxBodyBytes) {
      return new ProtocolError(
        "too-large",
        `message body of ${length} bytes is larger than the limit of ${this.#maxBodyBytes} bytes`,
        header(),
      );
    }
    return undefined;
  }

  /** Checks and parses a complete message, header included. */
  #finish(bytes: Uint8Array): Message | ProtocolError {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const body = bytes.subarray(HEADER_BYTES);
    const expected = view.getUint32(12);
    const actual = crc32(body);
    if (actual !== expected) {
      return new ProtocolError(
        "bad-checksum",
        `bad checksum: the body's CRC-32 is ${hex32(actual)}, the header says ${hex32(expected)}`,
        bytes,
      );
    }
    try {
      return { type: view.getUint32(4), body: JSON.parse(utf8Decode(body)), bytes };
    } catch {
      return new ProtocolError("bad-json", "the message body is not UTF-8 JSON", bytes);
    }
  }
}

function hex32(value: number): string {
  return "0x" + value.toString(16).padStart(8, "0");
}

/**
 * Names a message type: `"request"`, `"response"`, `"error"`, or
 * `"unknown"` for any other number.
 *
 * @example
 * ```ts
 * import { messageTypeName } from "./message.ts";
 * messageTypeName(2); // "response"
 * messageTypeName(7); // "unknown"
 * ```
 */
export function messageTypeName(type: number): string {
  switch (type) {
    case MessageType.Request:
      return "request";
    case MessageType.Response:
      return "response";
    case MessageType.Error:
      return "error";
    default:
      return "unknown";
  }
}

/**
 * Labels the header fields of a message, one line each, for a `--trace`
 * hex dump. Describes as many fields as `bytes` holds (a field needs all 4
 * of its bytes).
 *
 * @example
 * ```ts
 * import { describeHeader, encodeMessage } from "./message.ts";
 * console.log(describeHeader(encodeMessage(1, { op: "echo" })));
 * // magic   12 34 56 78  0x12345678 (ok)
 * // type    00 00 00 01  1 (request)
 * // length  00 00 00 0d  13 bytes
 * // crc     c1 ba 61 a5  0xc1ba61a5
 * ```
 */
export function describeHeader(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lines: string[] = [];
  const fields = ["magic", "type", "length", "crc"];
  for (let i = 0; i < fields.length && 4 * i + 4 <= bytes.length; i++) {
    const value = view.getUint32(4 * i);
    const hex = Array.from(
      bytes.subarray(4 * i, 4 * i + 4),
      (b) => b.toString(16).padStart(2, "0"),
    );
    const meaning = [
      `${hex32(value)} (${value === MAGIC ? "ok" : `expected ${hex32(MAGIC)}`})`,
      `${value} (${messageTypeName(value)})`,
      `${value} bytes`,
      hex32(value),
    ][i];
    lines.push(`${fields[i].padEnd(6)}  ${hex.join(" ")}  ${meaning}`);
  }
  return lines.join("\n");
}

/**
 * Yields the messages and non-fatal errors a connection sends, until EOF.
 * A fatal {@linkcode ProtocolError} (including `"truncated"` at EOF) is
 * yielded last, and then the generator stops.
 *
 * @example
 * ```ts ignore
 * import { ProtocolError, readMessages } from "./message.ts";
 * for await (const item of readMessages(conn, { idleTimeoutMs: 10_000, what: "the request" })) {
 *   if (item instanceof ProtocolError) console.log(`bad message: ${item.message}`);
 *   else console.log(item.type, item.body);
 * }
 * ```
 */
export async function* readMessages(
  conn: ByteConn,
  limits: ReadLimits & { maxBodyBytes?: number },
): AsyncGenerator<Message | ProtocolError> {
  const decoder = new MessageDecoder(limits.maxBodyBytes);
  for await (const chunk of readChunks(conn, { ...limits, bufferSize: 64 * 1024 })) {
    for (const item of decoder.push(chunk)) {
      yield item;
      if (item instanceof ProtocolError && item.fatal) return;
    }
  }
  const last = decoder.end();
  if (last) yield last;
}
