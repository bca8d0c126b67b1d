/** Small helpers shared by the lesson tests (Redis ones: ./_redis.ts). */
import net from "node:net";
import { readAll, readWithTimeout } from "../lib/io.ts";
import { closeQuietly } from "../lib/net.ts";

export { randomBytes } from "../lib/text.ts";
export { closedPort, LessonServer, runTask } from "../tools/lesson_process.ts";

/** Connects a raw test socket to a server on loopback. */
export function rawConnect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

/** Reads until EOF (with a time limit), for raw test sockets. */
export function readToEnd(conn: Deno.Conn, timeoutMs = 10_000): Promise<Uint8Array> {
  return readAll(conn, { maxBytes: 64 * 1024 * 1024, idleTimeoutMs: timeoutMs });
}

/** Reads exactly `n` bytes or fails (EOF or time limit). */
export async function readExactly(
  conn: Deno.Conn,
  n: number,
  timeoutMs = 10_000,
): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const count = await readWithTimeout(conn, out.subarray(got), timeoutMs, "the server");
    if (count === null) throw new Error(`EOF after ${got} of ${n} bytes`);
    got += count;
  }
  return out;
}

/** Closes a raw socket, ignoring "already closed". */
export function closeRaw(conn: Deno.Conn): void {
  closeQuietly(conn);
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
export const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** Whole, one byte at a time, and in two pieces at every split point. */
export function* chunkings(bytes: Uint8Array): Generator<[string, Uint8Array[]]> {
  yield ["whole", [bytes]];
  yield ["byte by byte", Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))];
  for (let i = 0; i <= bytes.length; i++) {
    yield [`split at ${i}`, [bytes.subarray(0, i), bytes.subarray(i)]];
  }
}

/** Cuts `bytes` at the given positions (modulo its length + 1). */
export function cut(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  return pieces;
}

/** Connects and resets at once (SO_LINGER 0), as a client that gave up would. */
export function resetConnections(port: number, count: number): Promise<void> {
  let done = 0;
  return new Promise((resolve) => {
    for (let i = 0; i < count; i++) {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.resetAndDestroy();
        if (++done === count) resolve();
      });
      socket.on("error", () => {
        if (++done === count) resolve();
      });
    }
  });
}
