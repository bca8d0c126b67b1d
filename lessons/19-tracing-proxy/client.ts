/**
 * Lesson 19 client: a wire check.
 *
 * Sends `--bytes N` bytes (a pseudo-random pattern, the same every run) to
 * an echo server, through the proxy by default, reads the echo at the same
 * time, and checks that every byte came back, in order. Whatever the proxy
 * does to the chunks (`--split`, `--delay`), the bytes must be the same.
 * `--read-delay MS` makes this client a slow receiver, to watch
 * backpressure slow the sender down instead of filling anyone's memory.
 */
import {
  connect,
  LessonError,
  parseFlags,
  plural,
  readWithTimeout,
  runMain,
  timeoutFlag,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";

/** The most bytes it will send (and so hold in memory twice). */
const MAX_BYTES = 256 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;

/**
 * `size` pseudo-random bytes, the same for the same size (xorshift32): a
 * lost, doubled or reordered piece shows up as a difference.
 *
 * @example
 * ```ts
 * import { pattern } from "./client.ts";
 * pattern(4); // the same 4 bytes every time
 * ```
 */
export function pattern(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = 0x9e3779b9;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 19,
      role: "client",
      summary: "Sends bytes to an echo server (lessons 02, 08, 09), through the proxy by " +
        "default, and checks that every one comes back, in order.",
      flags: {
        bytes: {
          type: "number",
          description: "how many bytes to send",
          default: 1024 * 1024,
          min: 1,
          max: MAX_BYTES,
          value: "N",
        },
        "read-delay": {
          type: "number",
          description: `pause before each read of up to ${
            CHUNK_BYTES / 1024
          } KiB (a slow receiver)`,
          default: 0,
          max: 10_000,
          value: "MS",
        },
        timeout: timeoutFlag(60),
      },
    });
    const data = pattern(flags.bytes);
    const started = performance.now();
    using conn = await connect({ host: flags.host, port: flags.port, lesson: 19 });
    const timeoutMs = flags.timeout * 1000;
    await withDeadline(conn, timeoutMs, "the echo", () =>
      Promise.all([
        send(conn, data),
        receive(conn, data, flags["read-delay"], timeoutMs),
      ]));
    const ms = (performance.now() - started).toFixed(1);
    console.log(`sent ${plural(data.length, "byte")}, got every one back in order, in ${ms} ms`);
  });
}

/** Writes all of `data` in 64 KiB writes, then half-closes: "that was all". */
async function send(conn: Deno.Conn, data: Uint8Array) {
  for (let i = 0; i < data.length; i += CHUNK_BYTES) {
    await writeAll(conn, data.subarray(i, i + CHUNK_BYTES));
  }
  await conn.closeWrite();
}

/** Reads until EOF, comparing each byte with what was sent. */
async function receive(conn: Deno.Conn, sent: Uint8Array, delayMs: number, timeoutMs: number) {
  const buffer = new Uint8Array(CHUNK_BYTES);
  let got = 0;
  while (true) {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const n = await readWithTimeout(conn, buffer, timeoutMs, "the echo");
    if (n === null) break;
    if (got + n > sent.length) {
      throw new LessonError(`the server sent more than the ${sent.length} bytes we sent`);
    }
    for (let i = 0; i < n; i++) {
      if (buffer[i] !== sent[got + i]) {
        throw new LessonError(
          `byte ${got + i} differs: sent 0x${hex(sent[got + i])}, got back 0x${hex(buffer[i])}`,
        );
      }
    }
    got += n;
  }
  if (got < sent.length) {
    throw new LessonError(`the server closed after ${got} of the ${sent.length} bytes we sent`);
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
