/**
 * `Deno.listen` echo servers for bench/fairness.ts: the plain one, and the
 * changes a TypeScript program can make, one per VARIANT, to see whether any
 * of them makes 1,000 busy connections fair. Each is a few lines; `plain` is
 * the whole idea:
 *
 *     for await (const conn of listener) echo(conn); // no await: all at once
 *     async function echo(conn) { while ((n = await conn.read(buf)) !== null) await write(conn, buf, n); }
 *
 * Usage: deno run --allow-net=127.0.0.1 deno_echo.ts VARIANT (prints `listening on 127.0.0.1:PORT`)
 * bench/fairness.ts imports {@linkcode echoVariant} to check `--servers deno:VARIANT` up front.
 *
 * @module
 */
import { writeAll } from "../../lib/io.ts";
import { ReadTurns } from "../../lib/turns.ts";

type Echo = (conn: Deno.Conn) => Promise<void>;

/** Read into `size` bytes, write it back, until EOF. */
const loop = (size: number, after?: () => Promise<unknown>): Echo => async (conn) => {
  const buffer = new Uint8Array(size);
  for (let n; (n = await conn.read(buffer)) !== null;) {
    await writeAll(conn, buffer.subarray(0, n));
    await after?.();
  }
};

/** One promise that all connections wait on, settled by one timer: everyone yields together. */
let gate: Promise<void> | undefined;
const sharedYield = () =>
  gate ??= new Promise<void>((resolve) =>
    setTimeout(() => {
      gate = undefined;
      resolve();
    }, 0)
  );

/** At most `max` reads pending at once; the others queue for a turn, first come first served. */
function limitedReads(max: number): Echo {
  let pending = 0;
  const queue: (() => void)[] = [];
  return async (conn) => {
    const buffer = new Uint8Array(4096);
    while (true) {
      if (pending >= max) await new Promise<void>((resolve) => queue.push(resolve));
      else pending++;
      const n = await conn.read(buffer).finally(() => {
        const next = queue.shift();
        if (next) next(); // the turn passes on: `pending` stays the same
        else pending--;
      });
      if (n === null) return;
      await writeAll(conn, buffer.subarray(0, n));
    }
  };
}

/**
 * ReadTurns (lib/turns.ts, what lesson 08 uses): `limitedReads`, but a silent
 * read's turn is taken back; with `queueFrom` above `max`, reads queue only
 * in a crowd of that many.
 */
function turns(max: number, tickMs: number, queueFrom = max): Echo {
  const turns = new ReadTurns({ max, queueFrom, tickMs });
  return async (conn) => {
    const buffer = new Uint8Array(4096);
    for (let n; (n = await turns.read(conn, buffer)) !== null;) {
      await writeAll(conn, buffer.subarray(0, n));
    }
  };
}

const VARIANTS: Record<string, Echo> = {
  /** bench/echo_servers/deno_plain.ts: 64 KiB buffer. */
  plain: loop(64 * 1024),
  /** Lesson 08's small buffer. */
  "buffer-4k": loop(4096),
  /** Just the message: each read takes exactly one. */
  "buffer-64": loop(64),
  /** A zero timer after each echo (the issue: did not help). */
  "yield-timer": loop(4096, () => new Promise((resolve) => setTimeout(resolve, 0))),
  /** One shared zero timer: every connection that echoed waits for the same turn. */
  "yield-shared": loop(4096, sharedYield),
  /** Do not wait for the write before the next read: read and write overlap. */
  "read-ahead": async (conn) => {
    const buffers = [new Uint8Array(4096), new Uint8Array(4096)];
    let writing: Promise<void> = Promise.resolve();
    for (let i = 0, n; (n = await conn.read(buffers[i % 2])) !== null; i++) {
      await writing; // the other buffer's write must be done before we read into it
      writing = writeAll(conn, buffers[i % 2].subarray(0, n));
    }
    await writing;
  },
  /** Read through `conn.readable` with a BYOB reader. */
  byob: async (conn) => {
    const reader = conn.readable.getReader({ mode: "byob" });
    let buffer = new Uint8Array(4096);
    while (true) {
      const { value, done } = await reader.read(buffer);
      if (done || !value) return;
      await writeAll(conn, value);
      buffer = new Uint8Array(value.buffer); // the reader hands the buffer back
    }
  },
  /** Both ways through streams: `conn.readable.pipeTo(conn.writable)`. */
  pipe: (conn) => conn.readable.pipeTo(conn.writable),
};

/**
 * `limit-N`: at most N reads pending at once (a diagnosis only: silent
 * clients would hold all the turns); `turns-N-MS`: the same, but a read gives
 * its turn back after 2 ticks of an MS timer (ReadTurns, lib/turns.ts);
 * `crowd-N-FROM`: N turns with a 10 ms tick, but reads queue only once FROM
 * are pending (lesson 08's `new ReadTurns()` is `crowd-64-112`).
 */
function parametric(name: string): Echo | undefined {
  const limit = name.match(/^limit-(\d+)$/);
  if (limit) return limitedReads(Number(limit[1]));
  const match = name.match(/^turns-(\d+)-(\d+)$/);
  if (match) return turns(Number(match[1]), Number(match[2]));
  const crowd = name.match(/^crowd-(\d+)-(\d+)$/);
  if (crowd) return turns(Number(crowd[1]), 10, Number(crowd[2]));
}

/** The echo of one VARIANT, or undefined for a name that is none. */
export function echoVariant(name: string): Echo | undefined {
  return Object.hasOwn(VARIANTS, name) ? VARIANTS[name] : parametric(name);
}

/** Every VARIANT, for error messages. */
export const VARIANT_NAMES = [...Object.keys(VARIANTS), "limit-N", "turns-N-MS", "crowd-N-FROM"];

if (import.meta.main) {
  const variant = Deno.args[0] ?? "plain";
  const echo = echoVariant(variant);
  if (!echo) {
    console.error(`unknown variant ${variant}: ${VARIANT_NAMES.join(", ")}`);
    Deno.exit(2);
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`listening on 127.0.0.1:${listener.addr.port}`);
  for await (const conn of listener) {
    echo(conn).catch(() => {}).finally(() => {
      try {
        conn.close();
      } catch {
        // closed already (pipeTo closes it)
      }
    });
  }
}
