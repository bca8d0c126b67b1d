/**
 * Reading and writing a connection completely, with limits.
 *
 * Two facts surprise everyone who starts with sockets:
 *
 * 1. `write` may send only part of what you gave it and return how much it
 *    sent; the rest is your job. {@linkcode writeAll} loops until every byte
 *    is written.
 * 2. `read` returns whatever has arrived so far, which may be less than, more
 *    than or different from what the other side wrote in one go. It returns
 *    `null` at end of stream (EOF): the peer will send nothing more.
 *
 * These helpers call `conn.read` directly rather than draining
 * `conn.readable`: in Deno, reading `conn.readable` to its end closes the
 * whole connection (denoland/deno#22258), and after the peer half-closes we
 * still want to write our answer.
 *
 * Every read here has a size limit and a time limit, so a peer that sends too
 * much or nothing at all cannot make the program use all memory or hang.
 *
 * @module
 */

import { concat } from "@std/bytes";
import { LessonError, TimeoutError } from "./errors.ts";
import { closeQuietly } from "./net.ts";

/** Anything with `write` and `read`, such as `Deno.Conn`. */
export interface ByteConn {
  /** Reads into `buffer`; resolves to the number of bytes read, or null at EOF. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `data`; resolves to the number of bytes written. */
  write(data: Uint8Array): Promise<number>;
  /** Closes the connection. */
  close(): void;
}

/**
 * Writes every byte of `data`, calling `write` as often as needed.
 *
 * @example
 * ```ts ignore
 * import { writeAll } from "./io.ts";
 * await writeAll(conn, new TextEncoder().encode("Hello, world"));
 * await conn.closeWrite(); // half-close: "I have nothing more to send"
 * ```
 */
export async function writeAll(conn: Pick<ByteConn, "write">, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await conn.write(data.subarray(written));
  }
}

/**
 * Writes every byte of `data`, but gives up if a write makes no progress for
 * `timeoutMs`: the connection is closed and a {@linkcode TimeoutError} is
 * thrown. A peer that sends but never reads fills its receive buffer and then
 * ours, and from then on `write` waits for ever; without this limit that one
 * peer would hold its connection (or, in a one-at-a-time server, everyone).
 *
 * @example
 * ```ts ignore
 * import { writeAllWithTimeout } from "./io.ts";
 * await writeAllWithTimeout(conn, reply, 60_000, "the client");
 * ```
 */
export async function writeAllWithTimeout(
  conn: ByteConn,
  data: Uint8Array,
  timeoutMs: number,
  what = "the peer",
): Promise<void> {
  let written = 0;
  while (written < data.length) {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      closeQuietly(conn); // makes the pending write fail at once
    }, timeoutMs);
    try {
      written += await conn.write(data.subarray(written));
    } catch (error) {
      if (timedOut) {
        throw new TimeoutError(
          `timed out after ${timeoutMs / 1000} s writing to ${what}: it is not reading`,
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Runs `work` with a deadline for all of it, not for each read: after
 * `timeoutMs` the connection is closed (which makes any pending read or
 * write fail) and a {@linkcode TimeoutError} says what we were waiting for.
 * A per-read time limit alone does not stop a server that sends one byte
 * every few seconds; a deadline does.
 *
 * @example
 * ```ts ignore
 * import { readAll, withDeadline } from "./io.ts";
 * const reply = await withDeadline(conn, 10_000, "the echo", () =>
 *   readAll(conn, { maxBytes: 1024, idleTimeoutMs: 10_000 }));
 * ```
 */
export async function withDeadline<T>(
  conn: { close(): void },
  timeoutMs: number,
  what: string,
  work: () => Promise<T>,
): Promise<T> {
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    closeQuietly(conn);
  }, timeoutMs);
  const timeout = () => new TimeoutError(`gave up after ${timeoutMs / 1000} s waiting for ${what}`);
  try {
    const result = await work();
    if (expired) throw timeout(); // `work` swallowed the error the close caused
    return result;
  } catch (error) {
    if (expired) throw timeout();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads once, but gives up after `timeoutMs`: the connection is closed and a
 * {@linkcode TimeoutError} is thrown. Resolves like `conn.read`.
 *
 * @example
 * ```ts ignore
 * import { readWithTimeout } from "./io.ts";
 * const n = await readWithTimeout(conn, buffer, 5_000, "the reply");
 * ```
 */
export async function readWithTimeout(
  conn: ByteConn,
  buffer: Uint8Array,
  timeoutMs: number,
  what = "data",
): Promise<number | null> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn); // makes the pending read fail at once
  }, timeoutMs);
  try {
    return await conn.read(buffer);
  } catch (error) {
    if (timedOut) {
      throw new TimeoutError(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Limits for {@linkcode readAll} and {@linkcode readChunks}. */
export interface ReadLimits {
  /** Give up if nothing arrives for this long (milliseconds). */
  idleTimeoutMs: number;
  /** What we are reading, for error messages, e.g. "the reply". */
  what?: string;
}

/**
 * Yields chunks as they arrive until EOF. Each chunk is a view into a buffer
 * that is reused, so use it (or copy it) before asking for the next one.
 *
 * @example
 * ```ts ignore
 * import { readChunks, writeAll } from "./io.ts";
 * for await (const chunk of readChunks(conn, { idleTimeoutMs: 60_000 })) {
 *   await writeAll(conn, chunk); // echo
 * }
 * ```
 */
export async function* readChunks(
  conn: ByteConn,
  limits: ReadLimits & { bufferSize?: number },
): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(limits.bufferSize ?? 16 * 1024);
  while (true) {
    const n = await readWithTimeout(conn, buffer, limits.idleTimeoutMs, limits.what);
    if (n === null) return;
    yield buffer.subarray(0, n);
  }
}

/**
 * Reads until the peer half-closes (EOF) and returns all the bytes. Throws a
 * {@linkcode LessonError} if more than `maxBytes` arrive, and a
 * {@linkcode TimeoutError} if the peer goes quiet for `idleTimeoutMs`.
 *
 * @example
 * ```ts ignore
 * import { readAll } from "./io.ts";
 * const reply = await readAll(conn, { maxBytes: 1 << 20, idleTimeoutMs: 10_000, what: "the reply" });
 * ```
 */
export async function readAll(
  conn: ByteConn,
  limits: ReadLimits & { maxBytes: number },
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of readChunks(conn, { ...limits, bufferSize: 64 * 1024 })) {
    total += chunk.length;
    if (total > limits.maxBytes) {
      throw new LessonError(
        `${limits.what ?? "the data"} is larger than the limit of ${limits.maxBytes} bytes`,
      );
    }
    chunks.push(chunk.slice());
  }
  return concat(chunks) as Uint8Array;
}
