/**
 * Lesson 12: the chat room and the handling of one connection, as a module.
 *
 * - {@linkcode ChatRoom}: the map of names to sessions, and the announcements.
 * - {@linkcode ChatSession}: one user, speaking the line protocol of the
 *   README, over any transport that can queue a line ({@linkcode Outbox}),
 *   with flood control ({@linkcode FloodLimits}).
 * - {@linkcode serveChatConnection}: one TCP connection: bounded reading
 *   ({@linkcode ChatLineReader}), a bounded outgoing queue
 *   ({@linkcode ConnectionOutbox}), idle tracking.
 *
 * server.ts is a thin program around these; a later lesson (a browser
 * gateway, a Redis-backed room) imports them instead of copying them.
 *
 * @module
 */
import { concat } from "@std/bytes";
import {
  closeQuietly,
  describeNetError,
  formatAddr,
  type IdleTracker,
  LineDecoder,
  LineTooLongError,
  type RateLimit,
  TokenBucket,
  utf8Encode,
  Utf8Error,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import type { ReadTurns } from "../../lib/turns.ts";

/** The longest line, in bytes, not counting CR LF (the protocol's limit). */
export const MAX_LINE_BYTES = 4096;
/** A valid name: 1 to 32 letters, digits, `_` or `-`. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

/** The error codes of the protocol (`error CODE DETAIL`). */
export type ErrorCode =
  | "name-taken"
  | "bad-name"
  | "no-name"
  | "no-such-user"
  | "no-partner"
  | "unknown-command"
  | "line-too-long"
  | "not-utf8"
  | "slow-reader"
  | "too-fast";

/**
 * Flood control: what one user may make the server do. Each is a token
 * bucket (lib/rate.ts): `burst` at once, then `rate` a second. Every line
 * counts against `lines`; a `/name` counts against `names` too, because a
 * new name costs a `left` and a `joined` line to every other user.
 */
export interface FloodLimits {
  /** Lines of any kind. */
  lines: RateLimit;
  /** `/name` lines (each new name is announced to everyone). */
  names: RateLimit;
}

/**
 * The defaults (the `--line-*` and `--name-*` flags): far above what a person
 * types or pastes (a paste of 300 lines goes through whole), far below what
 * a script can send (tens of thousands of lines a second).
 */
export const FLOOD_LIMITS: FloodLimits = {
  lines: { burst: 300, rate: 20 },
  names: { burst: 5, rate: 0.2 },
};

/**
 * Where a session's lines go. Over TCP that is a {@linkcode ConnectionOutbox};
 * another transport (a WebSocket) only needs these two methods.
 */
export interface Outbox {
  /**
   * Queues one line: a string without LF, or its UTF-8 bytes with the LF (a
   * broadcast encodes its line once and shares these bytes between every
   * queue: they are never changed). False if the queue is full: the peer is
   * too slow.
   */
  send(line: string | Uint8Array): boolean;
  /** Bytes queued and not yet written, if the transport knows (lesson 20 paces by it). */
  readonly queuedBytes?: number;
  /**
   * Sends `lastLine` after what is queued (or instead of it, with `drop`),
   * then closes. Further `send`s are ignored.
   */
  close(lastLine?: string, drop?: boolean): void;
}

/** All the users of one chat server, by name. */
export class ChatRoom {
  #members = new Map<string, ChatSession>();
  /** Where the room notes who joined and left (default: nowhere). */
  log: (line: string) => void;

  /** @param log where to note who joined and left */
  constructor(log: (line: string) => void = () => {}) {
    this.log = log;
  }

  /** The named users, sorted. */
  users(): string[] {
    return [...this.#members.keys()].sort();
  }

  /** The session called `name`, if any. */
  get(name: string): ChatSession | undefined {
    return this.#members.get(name);
  }

  /** How many users have a name. */
  get size(): number {
    return this.#members.size;
  }

  /** Every named session (for a shutdown). */
  sessions(): ChatSession[] {
    return [...this.#members.values()];
  }

  /**
   * True if someone called `name` can be reached from here (a room shared
   * between servers, lesson 20, also knows the users on other servers).
   */
  has(name: string): boolean {
    return this.#members.has(name);
  }

  /**
   * Delivers `line` to the user `to`; false if nobody has that name. Lesson
   * 20 overrides it to reach users on other servers.
   */
  deliver(to: string, line: string): boolean {
    const target = this.#members.get(to);
    target?.send(line);
    return target !== undefined;
  }

  /**
   * Gives `session` the name `name` if it is free; announces `joined`. A
   * subclass may answer later (a Promise), e.g. after asking a shared store.
   */
  claim(session: ChatSession, name: string): boolean | Promise<boolean> {
    const holder = this.#members.get(name);
    if (holder && holder !== session) return false;
    if (holder === session) return true;
    this.release(session); // a new name frees the old one
    this.#members.set(name, session);
    session.name = name;
    this.broadcast(session, `joined ${name}`);
    this.log(`${name} joined from ${session.peer}`);
    return true;
  }

  /** Frees the session's name and announces `left` (nothing if it had none). */
  release(session: ChatSession): void {
    const name = session.name;
    if (name === undefined || this.#members.get(name) !== session) return;
    this.#members.delete(name);
    session.name = undefined;
    this.broadcast(session, `left ${name}`);
  }

  /** Sends `line` to every named user but `from` (to all of them without `from`). */
  broadcast(from: ChatSession | undefined, line: string): void {
    // Encoded once: 1,000 users share these bytes instead of getting 1,000 copies.
    const data = utf8Encode(line + "\n");
    // No copy of the map needed: a slow reader cut off on the way is deleted
    // from it, and a JavaScript Map's loop simply skips what was deleted.
    for (const member of this.#members.values()) {
      if (member !== from) member.send(data);
    }
  }
}

/** One user of the room: the protocol, whatever carries the lines. */
export class ChatSession {
  /** The user's name, once `/name` succeeded. */
  name: string | undefined;
  /** Whom plain lines go to (set by `/chat`). */
  partner: string | undefined;
  /** Who this is, for the log (e.g. `127.0.0.1:40000`). */
  readonly peer: string;
  #room: ChatRoom;
  #outbox: Outbox;
  #ended = false;
  #limits: FloodLimits;
  /** The flood control: one budget for lines, one for names (see FloodLimits). */
  #lines: Budget;
  #names: Budget;

  /**
   * @param room the room this user is in
   * @param outbox where this user's lines go
   * @param peer who this is, for the log
   * @param limits the flood control (default {@linkcode FLOOD_LIMITS})
   */
  constructor(room: ChatRoom, outbox: Outbox, peer: string, limits = FLOOD_LIMITS) {
    this.#room = room;
    this.#outbox = outbox;
    this.peer = peer;
    this.#limits = limits;
    this.#lines = new Budget(limits.lines);
    this.#names = new Budget(limits.names);
  }

  /**
   * Bytes waiting in this user's outgoing queue (0 if its transport does not
   * say): lesson 20 feeds lines from other servers only as this drains.
   */
  get queuedBytes(): number {
    return this.#outbox.queuedBytes ?? 0;
  }

  /** True once the session is over (bye, dropped, cut off). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Queues a line (or its bytes, LF included) for this user; a full queue cuts the user off. */
  send(line: string | Uint8Array): void {
    if (this.#ended) return;
    if (!this.#outbox.send(line)) this.#cutOff();
  }

  /**
   * Handles one line from this user (see the README's table). Every line gets
   * one answer. A Promise means: the answer is still to come (a room that
   * claims names elsewhere); handle the next line after it, to keep the order.
   */
  handleLine(line: string): void | Promise<void> {
    if (this.#ended) return;
    const [command, rest = ""] = splitFirst(line);
    if (command === "/bye") return this.end("said /bye", "bye");
    // Flood control first: a line over the budget does nothing but its error.
    if (!this.#withinLimits(command === "/name")) return;
    if (command === "/name") return this.#setName(rest);
    if (this.name === undefined) return this.error("no-name", "send /name NAME first");
    switch (command) {
      case "/users": // one page: `users TOTAL` and at most 100 names, after `rest`
        return this.send(usersPage(this.#room.users(), rest));
      case "/to": {
        const [to, text] = splitFirst(rest);
        if (to === "" || text === undefined) {
          return this.error("unknown-command", "usage: /to NAME TEXT");
        }
        return this.#deliver(to, text);
      }
      case "/chat": {
        if (rest === "") return this.error("unknown-command", "usage: /chat NAME");
        if (!this.#room.has(rest)) return this.error("no-such-user", `${rest} is not here`);
        this.partner = rest;
        return this.send(`ok chat ${rest}`);
      }
    }
    if (command.startsWith("/")) return this.error("unknown-command", `${command} (try /help)`);
    if (this.partner === undefined) {
      return this.error("no-partner", "choose someone with /chat NAME, or use /to NAME TEXT");
    }
    this.#deliver(this.partner, line);
  }

  /** Answers a line that could not be read (too long, not UTF-8); the session goes on. */
  handleBadLine(code: "line-too-long" | "not-utf8"): void {
    if (!this.#withinLimits(false)) return;
    this.error(
      code,
      code === "line-too-long"
        ? `lines are at most ${MAX_LINE_BYTES} bytes`
        : "lines must be UTF-8",
    );
  }

  /** Sends `error CODE DETAIL`. */
  error(code: ErrorCode, detail: string): void {
    this.send(`error ${code} ${detail}`);
  }

  /**
   * Ends the session: frees the name (announcing `left`), sends `lastLine`
   * (e.g. `bye`) and closes. Safe to call more than once.
   */
  end(why: string, lastLine?: string, drop = false): void {
    if (this.#ended) return;
    this.#ended = true;
    const name = this.name;
    this.#room.release(this);
    if (name !== undefined) this.#room.log(`${name} left: ${why}`);
    this.#outbox.close(lastLine, drop);
  }

  /**
   * Takes this line (and a `/name`) from the budgets. False if it is over a
   * budget: then it was answered `error too-fast`, or, for a user who keeps
   * going well past the limit, the session was ended.
   */
  #withinLimits(isName: boolean): boolean {
    const now = performance.now();
    let verdict = this.#lines.take(now);
    let what = `${this.#limits.lines.burst} lines at once or ${this.#limits.lines.rate} a second`;
    if (verdict === "ok" && isName) {
      verdict = this.#names.take(now);
      what = `${this.#limits.names.burst} name changes at once or one every ` +
        `${+(1 / this.#limits.names.rate).toFixed(2)} s`;
    }
    if (verdict === "ok") return true;
    if (verdict === "refused") this.error("too-fast", `more than ${what}: line dropped, slow down`);
    else this.end("sent too fast", `error too-fast you kept sending more than ${what}: goodbye`);
    return false;
  }

  #setName(name: string): void | Promise<void> {
    if (!NAME_PATTERN.test(name)) {
      return this.error("bad-name", "a name is 1-32 letters, digits, _ or -");
    }
    const answer = (claimed: boolean) =>
      claimed ? this.send(`ok name ${name}`) : this.error("name-taken", `${name} is taken`);
    const claimed = this.#room.claim(this, name);
    return typeof claimed === "boolean" ? answer(claimed) : claimed.then(answer);
  }

  #deliver(to: string, text: string): void {
    if (!this.#room.deliver(to, `from ${this.name} ${text}`)) {
      return this.error("no-such-user", `${to} is not here`);
    }
    this.send(`ok sent ${to}`);
  }

  /** The queue overflowed: drop what is queued, try to say why, close. */
  #cutOff(): void {
    this.end("too slow to read", "error slow-reader you did not read your messages", true);
  }
}

/**
 * One budget of flood control: a token bucket for what is allowed, and one of
 * the same size for what is refused. A user over the limit gets `refused` (the
 * line is dropped with an error); one who goes on sending as much again while
 * refused gets `close`: a client that ignores `error too-fast` is a script,
 * and answering every line of its flood would be work too.
 */
class Budget {
  #allowed: TokenBucket;
  #refused: TokenBucket;

  constructor(limit: RateLimit) {
    this.#allowed = new TokenBucket(limit);
    this.#refused = new TokenBucket(limit);
  }

  take(now: number): "ok" | "refused" | "close" {
    if (this.#allowed.take(now)) return "ok";
    return this.#refused.take(now) ? "refused" : "close";
  }
}

/** `"/to bob hi there"` → `["/to", "bob hi there"]`; no space → `[line, undefined]`. */
function splitFirst(line: string): [string, string] | [string, undefined] {
  const space = line.indexOf(" ");
  return space === -1 ? [line, undefined] : [line.slice(0, space), line.slice(space + 1)];
}

/** The most names in one `users` answer: a room of any size still fits in a short line. */
export const USERS_PAGE_SIZE = 100;

/**
 * The longest line a server sends, without its LF: `from NAME TEXT` with a
 * 32-byte NAME and a TEXT of MAX_LINE_BYTES (4,134 bytes). Every other line
 * is shorter: a `users` page is at most `users TOTAL` and 100 names of 33
 * bytes. A client can read the server with a limit, and a small one.
 */
export const MAX_SERVER_LINE_BYTES = "from ".length + 32 + 1 + MAX_LINE_BYTES;

/**
 * The answer to `/users` (`after` empty: the first page) or `/users AFTER`:
 * `users TOTAL` (everyone in the room), then at most USERS_PAGE_SIZE names
 * of `sorted` that sort after AFTER. A client pages through a big room with
 * `/users LAST`, LAST being the last name it got.
 *
 * @example
 * ```ts
 * import { usersPage } from "./room.ts";
 * usersPage(["alice", "bob", "carol"]); // "users 3 alice bob carol"
 * usersPage(["alice", "bob", "carol"], "alice"); // "users 3 bob carol"
 * ```
 */
export function usersPage(sorted: string[], after = ""): string {
  const start = after === "" ? 0 : sorted.findIndex((name) => name > after);
  const page = start === -1 ? [] : sorted.slice(start, start + USERS_PAGE_SIZE);
  return ["users", sorted.length, ...page].join(" ");
}

/** What {@linkcode ChatLineReader.push} finds: a line, or a line it could not read. */
export type LineItem = { line: string } | { bad: "line-too-long" | "not-utf8" };

const LF = 0x0a;

/**
 * Splits a byte stream into lines like lib's LineDecoder, but goes on after
 * a bad line: a line over the limit or not UTF-8 becomes one `bad` item, and
 * reading resynchronises at the next LF. (LineDecoder stops at the first
 * problem, which suits protocols where a bad line means a broken peer.) It
 * hands LineDecoder one line at a time, so it knows which line was bad.
 *
 * @example
 * ```ts
 * import { ChatLineReader } from "./room.ts";
 * const reader = new ChatLineReader(4);
 * reader.push(new TextEncoder().encode("hi\ntoo long\nok\n"));
 * // [{ line: "hi" }, { bad: "line-too-long" }, { line: "ok" }]
 * ```
 */
export class ChatLineReader {
  #max: number;
  #decoder: LineDecoder;
  /** True while skipping the rest of a line that was already too long. */
  #skipping = false;

  /** @param maxLineBytes the longest line, not counting CR LF */
  constructor(maxLineBytes = MAX_LINE_BYTES) {
    this.#max = maxLineBytes;
    this.#decoder = new LineDecoder(maxLineBytes);
  }

  /** Adds a chunk; returns what it completed. Never holds more than the limit. */
  push(chunk: Uint8Array): LineItem[] {
    const items: LineItem[] = [];
    for (let start = 0; start < chunk.length;) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf + 1;
      const piece = chunk.subarray(start, end); // at most one line
      start = end;
      if (this.#skipping) {
        if (lf !== -1) this.#skipping = false; // resynchronised
        continue;
      }
      try {
        for (const line of this.#decoder.push(piece)) items.push({ line });
      } catch (error) {
        this.#decoder = new LineDecoder(this.#max);
        if (error instanceof LineTooLongError) {
          items.push({ bad: "line-too-long" });
          if (lf === -1) this.#skipping = true; // its end is still to come
        } else if (error instanceof Utf8Error) {
          items.push({ bad: "not-utf8" });
        } else throw error;
      }
    }
    return items;
  }
}

/** Options for a {@linkcode ConnectionOutbox}. */
export interface OutboxOptions {
  /** The most bytes queued for the peer; more means it is too slow. */
  maxQueueBytes: number;
  /** A write that makes no progress this long closes the connection. */
  writeTimeoutMs: number;
  /** After `close`, the longest wait for the last lines to go out. */
  closeGraceMs?: number;
}

/**
 * A bounded outgoing queue on a TCP connection: `send` never waits, one
 * writer loop drains the queue, several lines per write. A peer that reads
 * slower than others talk to it fills the queue, and then `send` says so.
 */
export class ConnectionOutbox implements Outbox {
  #conn: Deno.Conn;
  #options: OutboxOptions;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #closing = false;
  #wake: (() => void) | undefined;
  /** Resolves when the writer loop is over and the connection closed. */
  readonly done: Promise<void>;

  /** Starts the writer loop on `conn`. */
  constructor(conn: Deno.Conn, options: OutboxOptions) {
    this.#conn = conn;
    this.#options = options;
    this.done = this.#writeLoop();
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  send(line: string | Uint8Array): boolean {
    if (this.#closing) return true;
    const data = typeof line === "string" ? utf8Encode(line + "\n") : line;
    if (this.#queuedBytes + data.length > this.#options.maxQueueBytes) return false;
    this.#push(data);
    return true;
  }

  close(lastLine?: string, drop = false): void {
    if (this.#closing) return;
    this.#closing = true;
    if (drop) {
      this.#queue = [];
      this.#queuedBytes = 0;
    }
    if (lastLine !== undefined) this.#push(utf8Encode(lastLine + "\n"));
    this.#wake?.();
    // The last lines get a little time to go out; a peer that reads nothing gets no more.
    const timer = setTimeout(() => closeQuietly(this.#conn), this.#options.closeGraceMs ?? 2_000);
    this.done.finally(() => clearTimeout(timer));
  }

  #push(data: Uint8Array): void {
    this.#queue.push(data);
    this.#queuedBytes += data.length;
    this.#wake?.();
  }

  async #writeLoop(): Promise<void> {
    try {
      while (true) {
        if (this.#queue.length === 0) {
          if (this.#closing) break;
          await new Promise<void>((resolve) => this.#wake = resolve);
          this.#wake = undefined;
          continue;
        }
        // Everything queued, in one write.
        const chunks = this.#queue;
        this.#queue = [];
        const data = chunks.length === 1 ? chunks[0] : concat(chunks);
        await writeAllWithTimeout(this.#conn, data, this.#options.writeTimeoutMs, "the client");
        this.#queuedBytes -= data.length;
        if (this.#queuedBytes < 0) this.#queuedBytes = 0; // dropped meanwhile
      }
    } catch (error) {
      if (describeNetError(error) === undefined) throw error; // a bug
    } finally {
      closeQuietly(this.#conn);
    }
  }
}

/** What the idle tracker follows for one connection. */
export interface TrackedConnection {
  /** The tracker's clock when the client last sent something. */
  lastActive: number;
  /** The session on this connection. */
  session: ChatSession;
}

/** Options for {@linkcode serveChatConnection}. */
export interface ChatConnectionOptions extends OutboxOptions {
  /** Follows each connection's activity and ends the quiet ones (see server.ts). */
  idle: IdleTracker<TrackedConnection>;
  /** Reads in turns (lib/turns.ts), so that 1,000 busy users are served fairly. */
  turns?: ReadTurns;
  /** The flood control (default {@linkcode FLOOD_LIMITS}). */
  flood?: FloodLimits;
}

/**
 * The longest one connection's lines run before the others get a turn: a
 * 16 KiB read holds up to 8,192 lines, and the event loop serves nobody else
 * while they are handled.
 */
const MAX_TURN_MS = 2;

/**
 * Serves one TCP client of the room until it leaves, drops or is cut off.
 * Never throws for the client's misbehaviour.
 *
 * @example
 * ```ts ignore
 * import { ChatRoom, serveChatConnection } from "./room.ts";
 * const room = new ChatRoom(console.log);
 * await serveEach(listener, (conn) => serveChatConnection(conn, room, options), { maxConnections });
 * ```
 */
export async function serveChatConnection(
  conn: Deno.TcpConn,
  room: ChatRoom,
  options: ChatConnectionOptions,
): Promise<void> {
  const peer = formatAddr(conn.remoteAddr); // [::1]:PORT for IPv6
  const outbox = new ConnectionOutbox(conn, options);
  const session = new ChatSession(room, outbox, peer, options.flood);
  const tracked: TrackedConnection = { lastActive: 0, session };
  options.idle.add(tracked);
  const reader = new ChatLineReader();
  const buffer = new Uint8Array(16 * 1024);
  let why = "hung up";
  try {
    while (!session.ended) {
      const n = await (options.turns?.read(conn, buffer) ?? conn.read(buffer));
      if (n === null) break;
      tracked.lastActive = options.idle.now;
      let turnStarted = performance.now();
      for (const item of reader.push(buffer.subarray(0, n))) {
        if (session.ended) break; // e.g. closed for flooding: the rest is not read
        if ("line" in item) {
          const answering = session.handleLine(item.line);
          if (answering) await answering; // lesson 20: a name claimed in Redis
        } else session.handleBadLine(item.bad);
        // Past 2 ms, give the others a turn (a timer runs after pending I/O).
        if (performance.now() - turnStarted > MAX_TURN_MS) {
          await new Promise((resolve) => setTimeout(resolve, 0));
          turnStarted = performance.now();
        }
      }
    }
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error; // a bug: crash with the stack trace
    why = reason;
  } finally {
    options.idle.delete(tracked);
    session.end(why); // no-op if it already ended
    await outbox.done;
  }
}
