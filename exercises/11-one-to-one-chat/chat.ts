// deno-lint-ignore-file no-unused-vars -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 11: the read side of the conversation is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 11`:
 * lesson 11's own tests check your file in the lesson's place.
 *
 * Lesson 11: the conversation itself, the same on both sides.
 *
 * Once connected, server and client behave alike: each sends the lines its
 * user types, and prints the lines the other side sends, labelled. Whoever
 * types `/bye` sends it, stops sending (half-close), and waits a moment for
 * the other side to close. Whoever receives `/bye` closes. So this module is
 * shared by server.ts and client.ts: a {@linkcode Chat} is one conversation
 * on one connection.
 *
 * Reading and writing are independent (lesson 09): `say` writes whenever
 * the user types, while a loop started by the constructor reads whenever the
 * peer sends.
 */
import {
  closeQuietly,
  describeNetError,
  LessonError,
  LineDecoder,
  LineTooLongError,
  terminalSafe,
  TimeoutError,
  utf8Encode,
  Utf8Error,
  writeAllWithTimeout,
} from "../../lib/mod.ts";

/** The longest line either side accepts, in bytes (a peer that never sends LF is cut off here). */
export const MAX_LINE_BYTES = 4096;
/** What the server says first. */
export const WELCOME = "Welcome, You are connected to the server";
/** The line that ends a conversation, in both directions. */
export const BYE = "/bye";

/**
 * Text that has waited this long without its newline is shown anyway. Some
 * peers (many first Python socket programs, clients and servers) do not end their
 * messages with LF; without this we would show nothing until they hang up.
 */
const PAUSE_MS = 250;
/** After our `/bye`: how long we wait for the other side to close. */
const BYE_WAIT_MS = 5_000;
/** The longest a write may make no progress (the peer is not reading). */
const WRITE_TIMEOUT_MS = 10_000;

/** How a conversation ended. */
export type Ending =
  | { by: "you" } // we sent /bye
  | { by: "peer" } // they sent /bye
  | { by: "hangup" } // they closed without /bye
  | { by: "error"; reason: string }; // idle, too long, not UTF-8, reset, ...

/** Options for a {@linkcode Chat}. */
export interface ChatOptions {
  /** How the peer's lines are labelled: `client` or `server`. */
  peer: "client" | "server";
  /**
   * Close if the peer completes no line for this long (the server's
   * --idle-timeout): silent, or sending a line a byte at a time.
   */
  idleTimeoutMs?: number;
  /** Where output goes (default console.log). */
  print?: (line: string) => void;
}

/** One conversation on one connection. */
export class Chat {
  /** Resolves when the conversation is over, and says how it ended. */
  readonly done: Promise<Ending>;
  #conn: Deno.TcpConn;
  #options: ChatOptions;
  #print: (line: string) => void;
  /** Writes go one after another, never interleaved. */
  #writing: Promise<void> = Promise.resolve();
  #saidBye = false;

  constructor(conn: Deno.TcpConn, options: ChatOptions) {
    this.#conn = conn;
    this.#options = options;
    this.#print = options.print ?? console.log;
    this.done = this.#readLoop();
  }

  /** True once we have sent `/bye` (nothing more can be sent). */
  get over(): boolean {
    return this.#saidBye;
  }

  /**
   * Sends one line the user typed; `/bye` ends the conversation. Never
   * throws: a failed write ends the conversation through `done`.
   */
  say(text: string): Promise<void> {
    if (this.#saidBye) return this.#writing;
    if (text === BYE) return this.leave();
    return this.#send(text);
  }

  /** Sends `/bye`, half-closes, and lets the other side close (for up to 5 s). */
  leave(): Promise<void> {
    if (this.#saidBye) return this.#writing;
    this.#saidBye = true;
    const sent = this.#send(BYE).then(async () => {
      await this.#conn.closeWrite().catch(() => {});
      // The read loop sees the peer's EOF and finishes; if it never comes, close.
      const timer = setTimeout(() => closeQuietly(this.#conn), BYE_WAIT_MS);
      await this.done;
      clearTimeout(timer);
    });
    return sent;
  }

  /** Queues one line for the peer. */
  #send(text: string): Promise<void> {
    const data = utf8Encode(text + "\n");
    this.#writing = this.#writing.then(() =>
      writeAllWithTimeout(this.#conn, data, WRITE_TIMEOUT_MS, `the ${this.#options.peer}`)
    ).catch(() => closeQuietly(this.#conn)); // the read loop reports why
    return this.#writing;
  }

  /** Prints the peer's lines until the conversation ends; then closes. */
  async #readLoop(): Promise<Ending> {
    const { peer } = this.#options;
    try {
      // TODO(exercise): print each of the peer's messages (readMessages(this.#conn,
      // this.#options.idleTimeoutMs, peer)) as `client> TEXT` (`peer`'s label) until
      // BYE, with TEXT through terminalSafe (a raw CR or ESC could rewrite the screen);
      // return how the chat ended: by "you" if this.#saidBye, else "peer" for a BYE
      // and "hangup" for EOF.
      return { by: "hangup" };
    } catch (error) {
      if (this.#saidBye) return { by: "you" }; // we closed it after our /bye
      const reason = describeNetError(error);
      if (reason === undefined) throw error; // a bug: crash with the stack trace
      if (error instanceof LessonError) {
        // The peer broke a rule (idle, too long, not UTF-8): tell it why before
        // hanging up (best effort: it may not be reading).
        this.#saidBye = true;
        await this.#send(`${reason}: closing`).then(() => this.#send(BYE));
      }
      return { by: "error", reason };
    } finally {
      await this.#writing;
      closeQuietly(this.#conn);
    }
  }
}

/**
 * Yields the peer's messages: each line (LF or CR LF), through lib's
 * bounded LineDecoder, plus any text that has waited PAUSE_MS without its
 * newline (a peer that does not frame its messages). Throws if a line is
 * longer than MAX_LINE_BYTES, is not UTF-8, or if no line is completed for
 * `idleTimeoutMs`. Only a newline counts: a peer sending one byte a second
 * is busy, but it is not talking, and it must not hold the chat for ever.
 */
async function* readMessages(
  conn: Deno.TcpConn,
  idleTimeoutMs: number | undefined,
  peer: string,
): AsyncGenerator<string> {
  let decoder = new LineDecoder(MAX_LINE_BYTES);
  const buffer = new Uint8Array(16 * 1024);
  // One read is always in flight; waiting for it may be cut short by a timer.
  let reading: Promise<number | null> | undefined;
  /** When the last line was completed (or the chat began): the idle clock. */
  let lastLine = Date.now();
  /** True if bytes came after that line (a line is under way, or was shown unfinished). */
  let partial = false;
  try {
    while (true) {
      reading ??= conn.read(buffer);
      const idleMs = idleTimeoutMs === undefined
        ? undefined
        : lastLine + idleTimeoutMs - Date.now();
      const waitMs = decoder.bufferedBytes > 0 ? Math.min(PAUSE_MS, idleMs ?? PAUSE_MS) : idleMs;
      const n = await raceTimer(reading, waitMs);
      if (n === "timer") {
        if (idleTimeoutMs !== undefined && Date.now() >= lastLine + idleTimeoutMs) {
          const seconds = idleTimeoutMs / 1000;
          throw new TimeoutError(
            partial
              ? `the ${peer} sent no complete line in ${seconds} s`
              : `the ${peer} sent nothing for ${seconds} s`,
          );
        }
        // Text without a newline, and the peer paused: show it as it is.
        // (It does not restart the idle clock: only a newline does.)
        const text = decoder.end();
        decoder = new LineDecoder(MAX_LINE_BYTES);
        if (text !== undefined) yield text;
        continue;
      }
      reading = undefined;
      if (n === null) break; // EOF
      const lines = decoder.push(buffer.subarray(0, n));
      if (lines.length > 0) lastLine = Date.now();
      partial = lines.length === 0 || decoder.bufferedBytes > 0;
      yield* lines;
      if (decoder.error) throw decoder.error;
    }
    const last = decoder.end();
    if (last !== undefined) yield last;
  } catch (error) {
    if (error instanceof LineTooLongError) {
      throw new LessonError(`the ${peer} sent a line longer than ${MAX_LINE_BYTES} bytes`);
    }
    if (error instanceof Utf8Error) {
      throw new LessonError(`the ${peer} sent a line that is not UTF-8`);
    }
    throw error;
  } finally {
    reading?.catch(() => {}); // the caller closes the connection: that read fails, on purpose
  }
}

/** Waits for `promise`, or for `ms` (then resolves "timer"); no timer if `ms` is undefined. */
async function raceTimer<T>(promise: Promise<T>, ms: number | undefined): Promise<T | "timer"> {
  if (ms === undefined) return await promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"timer">((resolve) =>
        timer = setTimeout(() => resolve("timer"), Math.max(0, ms))
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
