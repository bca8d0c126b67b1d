// deno-lint-ignore-file ban-unused-ignore -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 20: taking a name in Redis, for all the servers at once, is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 20`:
 * lesson 20's own tests check your file in the lesson's place (they need redis-server).
 *
 * Lesson 20: lesson 12's chat room, shared by several servers through Redis.
 *
 * {@linkcode SharedRoom} is lesson 12's `ChatRoom` (imported, not copied)
 * with four of its methods extended:
 *
 * - `claim`: a name is taken in Redis first (`SET chat:name:NAME ID NX PX`),
 *   so two servers can never give out the same name;
 * - `release`: the name is deleted (if it is still ours) and `left` is
 *   published to every server;
 * - `has` / `users`: the users here plus those on other servers (a copy of
 *   Redis's view, kept up to date by events and a check every few seconds);
 * - `deliver`: a message for a user on another server is published on that
 *   server's channel (`chat:to:ID`).
 *
 * Every few seconds (a third of `--expiry`) the room refreshes the expiry of
 * its names and compares its view with Redis: a server that died leaves
 * names nobody refreshes, they expire, and every other server announces
 * `left` for them. Without Redis the room works like lesson 12's, for the
 * users of this server only, and rebuilds the shared view when Redis is back.
 *
 * What comes from other servers arrives in bursts that nothing at the
 * sender's end slowed down. The room handles it a slice (5 ms) at a time,
 * and gives each user's queue lines from elsewhere only as it drains; what
 * does not fit in the user's bounded backlog is dropped, and the user told
 * how many (README, "Bursts from another server").
 *
 * @module
 */
import { createClient } from "redis";
import { ChatRoom, type ChatSession, NAME_PATTERN } from "../12-multi-user-chat/room.ts";

/** The key of a claimed name; its value is the id of the server that holds the user. */
const NAME_PREFIX = "chat:name:";
/** The channel every server listens to: who joined and who left. */
const EVENTS = "chat:events";
/** The channel of one server: messages for its users. */
const inbox = (server: string) => `chat:to:${server}`;
/** The longest message we accept from Redis (a chat line is at most 4 KiB). */
const MAX_MESSAGE_CHARS = 16 * 1024;
/** Who the notices to users are from: brackets, so no user can have this name. */
export const NOTICE_FROM = "[server]";
/**
 * The most characters from Redis waiting to be handled: a burst past
 * it is dropped (see #receive). Redis sends as fast as the other servers
 * publish; without a bound, a burst would wait here without end.
 */
export const MAX_INBOX_CHARS = 8 * 1024 * 1024;
/** The most characters of messages waiting for one user's queue to drain (see #feed). */
export const MAX_BACKLOG_CHARS = 1024 * 1024;
/** The most characters waiting for all users together. */
export const MAX_BACKLOGS_CHARS = 32 * 1024 * 1024;
/** The longest the room handles lines from Redis before the users get a turn (ms). */
const SLICE_MS = 5;

/**
 * Keeps a name that is ours (a new expiry), takes it back if Redis forgot it
 * (it restarted), and returns 0 if another server has it meanwhile. A script
 * runs in Redis as one step: nothing can happen between the GET and the SET.
 */
const KEEP_NAME = `local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
/** Deletes a name only if it is still ours (after an outage it may not be). */
const DROP_NAME = `if redis.call('GET', KEYS[1]) == ARGV[1] then
return redis.call('DEL', KEYS[1]) end return 0`;

/** Options for a {@linkcode SharedRoom}. */
export interface SharedRoomOptions {
  /** Where Redis is, e.g. `redis://127.0.0.1:6379`. */
  url: string;
  /** This server's id in Redis: unique, e.g. `65420-3fa2c1`. */
  serverId: string;
  /** How long a name lives in Redis unless its server refreshes it. */
  expiryMs: number;
  /** Who joined and left (lesson 12's room log). */
  log: (line: string) => void;
  /** How the room is with Redis: lost, back (printed at once, never throttled). */
  status: (line: string) => void;
  /** A Redis command not answered in this time counts as Redis being away (default 2 s). */
  commandTimeoutMs?: number;
  /**
   * The bound of each user's outgoing queue (lesson 12's `--max-queue`, default
   * 256 KiB): lines from other servers fill it to 3/4 at most, and wait in
   * the user's backlog meanwhile.
   */
  maxQueueBytes?: number;
}

/** What came from Redis and is still to be handled (see #receive). */
interface Received {
  channel: "events" | "inbox";
  text: string;
}

/** Messages from other servers waiting for one user's queue to drain. */
interface Backlog {
  lines: string[];
  chars: number;
  /** Messages for this user dropped since the last notice. */
  dropped: number;
}

/** One event on the `chat:events` channel. */
interface RoomEvent {
  server: string;
  event: "joined" | "left";
  name: string;
}

/**
 * Lesson 12's room, shared through Redis; see the module documentation.
 *
 * @example
 * ```ts ignore
 * const room = new SharedRoom({ url, serverId: "65420-3fa2c1", expiryMs: 15_000, log, status });
 * room.start();
 * await serveChat(listener, flags, log, room); // lesson 12's server, this room
 * await room.close();
 * ```
 */
export class SharedRoom extends ChatRoom {
  /** This server's id in Redis. */
  readonly id: string;
  #options: SharedRoomOptions;
  /** Commands (SET, EVAL, SCAN, PUBLISH); a subscribed connection can do nothing else. */
  #redis: ReturnType<typeof createClient>;
  #subscriber: ReturnType<typeof createClient>;
  #subscribed = false;
  /** True while the shared view is up to date (Redis answers). */
  #online = false;
  #syncing = false;
  /** Set once we said Redis is away; cleared when it is back. */
  #saidAway = false;
  #lostBefore = false;
  #closed = false;
  /** Users on other servers: name to server id. */
  #remote = new Map<string, string>();
  /** When each name last changed through an event (see #reconcile). */
  #changed = new Map<string, number>();
  #clock = 0;
  /** Commands sent without waiting (DEL, PUBLISH), so close() can wait for them. */
  #pending = new Set<Promise<unknown>>();
  #ticker: ReturnType<typeof setInterval> | undefined;
  #startDeadline: ReturnType<typeof setTimeout> | undefined;
  /** Resolves the promise of start(): connected, or said to be out of reach. */
  #started: (() => void) | undefined;
  #eventListener = (text: string) => this.#receive({ channel: "events", text });
  #messageListener = (text: string) => this.#receive({ channel: "inbox", text });
  /** What came from Redis, in order, not yet handled; from #inboxHead on. */
  #inbox: Received[] = [];
  #inboxHead = 0;
  #inboxChars = 0;
  /** Events dropped from a full inbox: the view is compared with Redis once it is empty. */
  #missedEvents = false;
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  /** Messages from other servers waiting for a user's queue to drain. */
  #backlogs = new Map<ChatSession, Backlog>();
  #backlogChars = 0;
  /** Set while the first connection (or a reconnection) is set up: claims wait for it. */
  #comingUp: PromiseWithResolvers<void> | undefined;
  /** How long we wait for any answer from Redis (see #ask). */
  #timeoutMs: number;
  /** Lines from other servers go into a user's queue while it holds less than this. */
  #highWater: number;

  /** @param options where Redis is, this server's id, the expiry, the logs */
  constructor(options: SharedRoomOptions) {
    super(options.log);
    this.id = options.serverId;
    this.#options = options;
    this.#timeoutMs = options.commandTimeoutMs ?? 2_000;
    this.#highWater = (options.maxQueueBytes ?? 256 * 1024) * 3 / 4;
    this.#redis = createClient({
      url: options.url,
      // Fail at once while Redis is away instead of queueing commands for later.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: this.#timeoutMs,
        // Try again after 0.1, 0.2, 0.4 ... at most 5 s, with jitter so that
        // many servers do not all knock at the same moment.
        reconnectStrategy: (retries: number) =>
          Math.min(100 * 2 ** retries, 5_000) * (0.5 + Math.random() / 2),
      },
    });
    this.#subscriber = this.#redis.duplicate();
    for (const client of [this.#redis, this.#subscriber]) {
      client.on("error", (error: unknown) => this.#away(error));
      client.on("ready", () => this.#sync());
    }
  }

  /** True while the servers share one view through Redis. */
  get online(): boolean {
    return this.#online;
  }

  /**
   * Connects and starts the periodic check. Resolves once the room shares
   * the view through Redis, or once Redis is found out of reach (said once:
   * then the room serves this server's users, and reconnects in the
   * background), and after twice the command deadline (4 s) at the latest.
   * A server listens only then: a user who comes earlier would have a name
   * checked on this server only, that another server may give out too.
   */
  start(): Promise<void> {
    const started = Promise.withResolvers<void>();
    this.#started = started.resolve;
    for (const client of [this.#redis, this.#subscriber]) {
      client.connect().catch((error: unknown) => this.#away(error));
    }
    this.#ticker = setInterval(() => this.#tick(), this.#options.expiryMs / 3);
    // The command deadline does not cover node-redis's own handshake: a Redis
    // that accepts the connection but answers nothing needs a deadline of its
    // own. (A room that is still setting up, #comingUp, has its own deadlines.)
    this.#startDeadline = setTimeout(() => {
      if (!this.#online && this.#comingUp === undefined) {
        this.#away(new Error("no answer in time"));
      }
    }, this.#timeoutMs);
    const latest = setTimeout(started.resolve, 2 * this.#timeoutMs);
    return started.promise.finally(() => clearTimeout(latest));
  }

  /** Waits for what is still being sent (bounded by the command timeout), then disconnects. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#ticker);
    clearTimeout(this.#startDeadline);
    clearTimeout(this.#pumpTimer);
    await Promise.allSettled(this.#pending);
    // A polite close waits for the answers still due: a Redis that stopped
    // answering gets the same deadline as any command, then we hang up.
    await Promise.all([this.#redis, this.#subscriber].map(async (client) => {
      if (client.isReady) await this.#ask(client.close()).catch(() => client.destroy());
      else if (client.isOpen) client.destroy();
    }));
  }

  /** The users here and on every other server, sorted. */
  override users(): string[] {
    return [...new Set([...super.users(), ...this.#remote.keys()])].sort();
  }

  override has(name: string): boolean {
    return super.has(name) || this.#remote.has(name);
  }

  override deliver(to: string, line: string): boolean {
    if (super.deliver(to, line)) return true; // on this server
    const server = this.#remote.get(to);
    if (server === undefined) return false;
    // At most once: if that server is not subscribed right now, nobody gets it.
    this.#background(this.#redis.publish(inbox(server), JSON.stringify({ to, line })));
    return true;
  }

  override async claim(session: ChatSession, name: string): Promise<boolean> {
    if (session.name === name) return true;
    // Redis answered and the room is setting up (just started, or back after
    // an outage): the claim is decided in Redis once that is done, not on
    // this server alone (another server may be giving the name out meanwhile).
    if (!this.#online && this.#comingUp) await this.#comingUp.promise;
    // TODO(exercise): give `name` to `session` (true) or refuse it (false). Refuse a name
    // someone here or elsewhere has (this.has). While Redis answers (this.#online), let
    // Redis decide in one command: set the key NAME_PREFIX + name to this.id only if it
    // does not exist yet, with an expiry (this.#options.expiryMs); node-redis's set() takes
    // { NX, PX } and answers null when the key exists. Wait for Redis only through
    // this.#ask (a deadline); if that fails, Redis is away: this.#away(error), and the name
    // is decided here alone. After any wait, look again: is the user still there, is the
    // name still free here? If not, give it back (this.#dropName) and refuse. Then take it
    // with lesson 12's super.claim, and answer once the other servers were told (#publish).
    return false;
  }

  override release(session: ChatSession): void {
    const name = session.name;
    super.release(session);
    if (name === undefined || session.name !== undefined) return; // it held no name
    this.#dropName(name);
    this.#publish("left", name);
  }

  /** Tells every user on this server something about the chat itself. */
  #notice(text: string): void {
    this.broadcast(undefined, `from ${NOTICE_FROM} ${text}`);
  }

  /**
   * Waits for a Redis command's answer, at most the command deadline (2 s):
   * past it, the promise fails and the caller treats Redis as away. node-redis's
   * own `timeout` option only bounds the wait before a command is sent, not the
   * wait for its answer: a Redis that stops answering (a frozen process, a
   * network that drops everything) would keep us waiting forever.
   */
  #ask<T>(command: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer in time")), this.#timeoutMs);
    });
    // The late answer, if one ever comes, is ignored (race handles its failure too).
    return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
  }

  /** Sends a command without making anyone wait for it; a failure means Redis is away. */
  #background(command: Promise<unknown>): Promise<void> {
    const sent = this.#ask(command).then(() => {}, (error) => this.#away(error));
    this.#pending.add(sent);
    sent.finally(() => this.#pending.delete(sent));
    return sent;
  }

  #publish(event: RoomEvent["event"], name: string): Promise<void> {
    if (!this.#online) return Promise.resolve();
    return this.#background(
      this.#redis.publish(EVENTS, JSON.stringify({ server: this.id, event, name })),
    );
  }

  #dropName(name: string): void {
    if (!this.#online) return; // it expires by itself
    this.#background(
      this.#redis.eval(DROP_NAME, { keys: [NAME_PREFIX + name], arguments: [this.id] }),
    );
  }

  /** Redis is away (refused, closed, too slow): carry on here, say so once. */
  #away(error: unknown): void {
    if (this.#closed || this.#saidAway) return;
    this.#started?.(); // a server that was waiting for Redis to start listens now
    this.#saidAway = true;
    const wasOnline = this.#online;
    this.#online = false;
    const why = describeRedisError(error, this.#options.url);
    // Users elsewhere cannot be reached now: say so, the honest way. (Even on
    // the first failure: a sync that failed half-way may have announced some.)
    for (const name of [...this.#remote.keys()]) this.#forgetRemote(name);
    if (!wasOnline && !this.#lostBefore) {
      this.#options.status(
        `redis: cannot reach ${this.#options.url} (${why}): chatting on this server only, ` +
          "trying again in the background",
      );
      return;
    }
    this.#lostBefore = true;
    this.#options.status(
      `redis: lost ${this.#options.url} (${why}): chatting on this server only, ` +
        "reconnecting in the background",
    );
    this.#notice("the other chat servers are out of reach: only users on this server for now");
  }

  /** Every third of the expiry: keep our names, compare the view; or try to get back. */
  async #tick(): Promise<void> {
    if (!this.#online) return this.#sync();
    if (this.#syncing) return;
    this.#syncing = true;
    try {
      await this.#keepNames();
      await this.#reconcile();
    } catch (error) {
      this.#away(error);
    } finally {
      this.#syncing = false;
    }
  }

  /** Redis is there (again): subscribe, claim our names back, rebuild the view. */
  async #sync(): Promise<void> {
    if (this.#online || this.#syncing || this.#closed) return;
    if (!this.#redis.isReady || !this.#subscriber.isReady) return; // the other one's turn
    this.#syncing = true;
    const comingUp = this.#comingUp = Promise.withResolvers<void>();
    try {
      if (!this.#subscribed) {
        // node-redis subscribes again by itself after a reconnect.
        // The same listener functions each time: node-redis keeps a set of them,
        // so a subscribe that timed out and is tried again adds no second one.
        await this.#ask(this.#subscriber.subscribe(EVENTS, this.#eventListener));
        await this.#ask(this.#subscriber.subscribe(inbox(this.id), this.#messageListener));
        this.#subscribed = true;
      }
      await this.#keepNames();
      await this.#reconcile();
      this.#online = true;
      this.#saidAway = false;
      for (const name of super.users()) this.#publish("joined", name); // for the others' view
      const others = this.#remote.size;
      this.#options.status(
        `redis: ${this.#lostBefore ? "back at" : "connected to"} ${this.#options.url} ` +
          `as server ${this.id}: ${others} user${others === 1 ? "" : "s"} on other servers`,
      );
      if (this.#lostBefore) this.#notice("the other chat servers are back: /users lists everyone");
      this.#started?.();
    } catch (error) {
      this.#away(error);
    } finally {
      this.#syncing = false;
      this.#comingUp = undefined;
      comingUp.resolve(); // the claims that waited are decided now
    }
  }

  /**
   * Refreshes the expiry of every name on this server, and takes back those
   * Redis forgot. A name another server took while we could not reach Redis
   * is theirs: our user with that name is told so and disconnected.
   */
  async #keepNames(): Promise<void> {
    const names = super.users();
    const kept = await Promise.all(names.map((name) =>
      this.#ask(this.#redis.eval(KEEP_NAME, {
        keys: [NAME_PREFIX + name],
        arguments: [this.id, String(this.#options.expiryMs)],
      }))
    ));
    names.forEach((name, i) => {
      if (kept[i] !== 0) return;
      this.get(name)?.end(
        "name taken on another server during a Redis outage",
        `error name-taken ${name} was taken on another server while this one could not reach it`,
      );
    });
  }

  /**
   * Compares our view of the other servers' users with Redis and announces
   * the differences: names that expired (their server died) are `left`,
   * names we missed are `joined`. An event that arrived while we were reading
   * Redis is newer than what we read, so it wins (that is what #changed is for).
   */
  async #reconcile(): Promise<void> {
    const started = ++this.#clock;
    const holders = new Map<string, string>();
    let cursor = "0";
    do {
      const page = await this.#ask(
        this.#redis.scan(cursor, { MATCH: `${NAME_PREFIX}*`, COUNT: 1000 }),
      );
      cursor = String(page.cursor);
      if (page.keys.length === 0) continue;
      const servers = await this.#ask(this.#redis.mGet(page.keys));
      page.keys.forEach((key, i) => {
        const server = servers[i];
        if (server !== null) holders.set(key.slice(NAME_PREFIX.length), String(server));
      });
    } while (cursor !== "0");

    const unchanged = (name: string) => (this.#changed.get(name) ?? 0) < started;
    for (const [name, server] of holders) {
      if (server !== this.id && unchanged(name)) this.#rememberRemote(name, server);
    }
    for (const [name, server] of [...this.#remote]) {
      if (holders.get(name) !== server && unchanged(name)) this.#forgetRemote(name);
    }
    for (const [name, at] of this.#changed) if (at < started) this.#changed.delete(name);
  }

  #rememberRemote(name: string, server: string): void {
    if (super.has(name)) return; // ours here; #keepNames settles a conflict
    const known = this.#remote.has(name);
    this.#remote.set(name, server);
    if (!known) this.#toEveryone(`joined ${name}`);
  }

  #forgetRemote(name: string): void {
    if (this.#remote.delete(name)) this.#toEveryone(`left ${name}`);
  }

  /**
   * Something came from Redis. node-redis hands us a whole burst at once,
   * message after message, without letting anything else run in between: if
   * we handled each one here (a `joined` for every user, a 4 KB line into a
   * queue), the users' queues would fill before their writers had a turn,
   * and users who read normally would be cut off as slow. So this only takes
   * note, within a bound (MAX_INBOX_CHARS); #pump does the work, a slice at
   * a time. Past the bound: events are dropped (the view is compared with
   * Redis afterwards), messages too, and their users told how many.
   */
  #receive(item: Received): void {
    if (this.#closed) return;
    if (this.#inboxChars + item.text.length <= MAX_INBOX_CHARS) {
      this.#inbox.push(item);
      this.#inboxChars += item.text.length;
    } else if (item.channel === "events") {
      this.#missedEvents = true;
    } else {
      const to = parseMessage(item.text)?.to;
      const session = to === undefined ? undefined : this.get(to);
      if (session !== undefined) this.#backlogOf(session).dropped++;
    }
    this.#schedulePump(0);
  }

  #schedulePump(delayMs: number): void {
    this.#pumpTimer ??= setTimeout(() => this.#pump(), delayMs);
  }

  /**
   * Handles what came from Redis for at most SLICE_MS (5 ms), then lets the
   * users' reads and writes have their turn (a timer, not a microtask: only
   * a timer waits for the event loop). First it feeds the backlogs of the
   * users whose queues drained meanwhile.
   */
  #pump(): void {
    this.#pumpTimer = undefined;
    if (this.#closed) return;
    for (const [session, backlog] of this.#backlogs) this.#feed(session, backlog);
    const until = performance.now() + SLICE_MS;
    let handled = 0;
    while (this.#inboxHead < this.#inbox.length) {
      // One event can be a line for each of 1,000 users: the clock is read after each.
      if (handled++ > 0 && performance.now() > until) break;
      const item = this.#inbox[this.#inboxHead++];
      this.#inboxChars -= item.text.length;
      if (item.channel === "events") this.#onEvent(item.text);
      else this.#onMessage(item.text);
    }
    if (this.#inboxHead === this.#inbox.length) {
      this.#inbox = [];
      this.#inboxHead = 0;
    } else if (this.#inboxHead > 4096) { // let go of what was handled
      this.#inbox = this.#inbox.slice(this.#inboxHead);
      this.#inboxHead = 0;
    }
    if (this.#inbox.length > 0) return this.#schedulePump(0);
    if (this.#missedEvents && this.#online) {
      this.#missedEvents = false;
      this.#tick(); // events were dropped: compare the view with Redis now
    }
    if (this.#backlogs.size > 0) this.#schedulePump(1); // wait for the queues to drain
  }

  /** The backlog of `session`, made if it has none. */
  #backlogOf(session: ChatSession): Backlog {
    let backlog = this.#backlogs.get(session);
    if (backlog === undefined) {
      backlog = { lines: [], chars: 0, dropped: 0 };
      this.#backlogs.set(session, backlog);
    }
    return backlog;
  }

  /** True if `line` can go into the user's queue now: it stays under half of its bound. */
  #hasRoom(session: ChatSession, line: string): boolean {
    const queued = session.queuedBytes;
    // 3 bytes per UTF-16 unit at most; an empty queue takes any line.
    return queued === 0 || queued + 3 * line.length + 1 <= this.#highWater;
  }

  /**
   * A line from another server for one user here: into the user's queue if
   * it has room, into the user's backlog otherwise (in order, behind what
   * waits there). A full backlog drops the line; a dropped message is
   * counted, and the user told once the backlog has drained (#feed).
   */
  #toUser(session: ChatSession, line: string, isMessage: boolean): void {
    if (session.ended) return;
    let backlog = this.#backlogs.get(session);
    if (backlog === undefined && this.#hasRoom(session, line)) return session.send(line);
    backlog ??= this.#backlogOf(session);
    if (
      backlog.chars + line.length > MAX_BACKLOG_CHARS ||
      this.#backlogChars + line.length > MAX_BACKLOGS_CHARS
    ) {
      if (isMessage) backlog.dropped++;
    } else {
      backlog.lines.push(line);
      backlog.chars += line.length;
      this.#backlogChars += line.length;
    }
    this.#schedulePump(1);
  }

  /** A line from another server (`joined`, `left`) for every user here. */
  #toEveryone(line: string): void {
    for (const session of this.sessions()) this.#toUser(session, line, false);
  }

  /** Moves what fits from a backlog into the user's queue; then says what was dropped. */
  #feed(session: ChatSession, backlog: Backlog): void {
    let sent = 0;
    while (
      !session.ended && sent < backlog.lines.length &&
      this.#hasRoom(session, backlog.lines[sent])
    ) {
      const line = backlog.lines[sent++];
      backlog.chars -= line.length;
      this.#backlogChars -= line.length;
      session.send(line);
    }
    backlog.lines.splice(0, sent);
    if (!session.ended && backlog.lines.length === 0 && backlog.dropped > 0) {
      const notice = `from ${NOTICE_FROM} ${backlog.dropped} message${
        backlog.dropped === 1 ? "" : "s"
      } to you ${backlog.dropped === 1 ? "was" : "were"} dropped: too many arrived at once`;
      if (this.#hasRoom(session, notice)) {
        session.send(notice);
        backlog.dropped = 0;
      }
    }
    if (session.ended || (backlog.lines.length === 0 && backlog.dropped === 0)) {
      this.#backlogChars -= backlog.chars;
      this.#backlogs.delete(session);
    }
  }

  /** `joined` / `left` from another server. */
  #onEvent(message: string): void {
    if (!this.#online && !this.#syncing) return; // the view is rebuilt when Redis is back
    const event = parseJson(message) as Partial<RoomEvent> | undefined;
    if (
      typeof event?.server !== "string" || event.server === this.id ||
      typeof event.name !== "string" || !NAME_PATTERN.test(event.name)
    ) return;
    this.#changed.set(event.name, ++this.#clock);
    if (event.event === "joined") this.#rememberRemote(event.name, event.server);
    else if (event.event === "left" && this.#remote.get(event.name) === event.server) {
      this.#forgetRemote(event.name);
    }
  }

  /** A message for one of our users, from another server. */
  #onMessage(message: string): void {
    const parsed = parseMessage(message);
    // Gone meanwhile? Then the message is lost: at most once.
    const session = parsed === undefined ? undefined : this.get(parsed.to);
    if (session !== undefined) this.#toUser(session, parsed!.line, true);
  }
}

/** `{"to":NAME,"line":LINE}` from a `chat:to:ID` channel, or undefined if it is not that. */
function parseMessage(text: string): { to: string; line: string } | undefined {
  const { to, line } = (parseJson(text) ?? {}) as { to?: unknown; line?: unknown };
  if (typeof to !== "string" || typeof line !== "string" || line.includes("\n")) return undefined;
  return { to, line };
}

/** A JSON value, or undefined for text too long or not JSON (a broken or hostile peer). */
function parseJson(text: string): unknown {
  if (text.length > MAX_MESSAGE_CHARS) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** node-redis's errors in words (Node's error codes, its own messages); `url` is where Redis is. */
export function describeRedisError(error: unknown, url?: string): string {
  const code = (error as { code?: string })?.code;
  if (code === "EPERM" || error instanceof Deno.errors.NotCapable) {
    // Deno refused before any packet left: the task's permissions name the hosts it may reach.
    const host = url === undefined ? "that host" : new URL(url).hostname;
    return `not permitted: the task's --allow-net list does not include ${host}`;
  }
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET") return "connection reset";
  const message = error instanceof Error ? error.message : String(error);
  if (/socket closed unexpectedly/i.test(message)) return "the connection closed";
  if (/timeout/i.test(message)) return "no answer in time";
  return message;
}
