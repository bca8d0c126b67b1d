// deno-lint-ignore-file no-unused-vars prefer-const -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 15: what the client does after a failure (close, back off, retry
 * within the budget) is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 15`:
 * lesson 15's own tests check your file in the lesson's place.
 *
 * Lesson 15 client: a client that expects the network to fail.
 *
 * It sends each request (`--message`, `--count` times) and waits for its
 * answer, and it assumes any step can go wrong:
 *
 * - connecting and each answer have a deadline (`--timeout`), because the OS
 *   waits about two minutes for a connect and for ever for a read;
 * - a failed request is retried on a new connection, after a pause that
 *   doubles each time, with jitter, while the retry budget (`--retries`,
 *   for the whole run) lasts; what cannot be retried is counted lost;
 * - each request carries an id (`@ID TEXT`), so the server can tell a retry
 *   from a new request and never applies one twice (`--plain` leaves the ids
 *   out, to see why they matter);
 * - between requests (`--interval`) a heartbeat (`--heartbeat`) checks that
 *   the server still answers, and TCP keepalive is on for the case where
 *   the whole machine disappears.
 *
 * Each failure is printed with the OS error name beside it, and the run ends
 * with a summary: requests answered and lost, attempts, reconnects.
 */
import {
  closeQuietly,
  connectError,
  describeNetError,
  formatAddr,
  LessonError,
  parseFlags,
  plural,
  readLines,
  runMain,
  terminalSafe,
  TimeoutError,
  timeoutFlag,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";

/** The first pause before a retry, and the longest one. */
const BACKOFF_BASE_MS = 200;
const BACKOFF_CAP_MS = 5_000;
/** --split: each request in 2-byte pieces, 20 ms apart (as in lesson 05). */
const PIECE_BYTES = 2;
const PAUSE_MS = 20;
/** The longest answer line we accept. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** A failed step, with the name the OS gives it (ECONNRESET, ...) or what it was. */
class Failure extends LessonError {
  /** e.g. `ECONNRESET`, `EOF`, `our timeout` */
  osError: string | undefined;
  /** False when trying again cannot help (an unknown host name, a denied permission). */
  worthRetrying: boolean;
  constructor(message: string, osError?: string, worthRetrying = true) {
    super(message);
    this.osError = osError;
    this.worthRetrying = worthRetrying;
  }
}

/**
 * The server answered `error: ...` to this request (a line over its limit,
 * ...): sending the same request again gets the same answer, so only this
 * request is lost, and the next one may well be fine.
 */
class Rejected extends Failure {
  constructor(message: string) {
    super(message, undefined, false);
  }
}

async function main() {
  const flags = parseFlags(Deno.args, {
    lesson: 15,
    role: "client",
    summary: "Sends requests to the lesson 15 server with deadlines, retries with backoff, " +
      "request ids, heartbeats and TCP keepalive, then says what was lost.",
    flags: {
      message: {
        type: "list",
        description: 'a request to send (default "Hello")',
        value: "TEXT",
      },
      count: {
        type: "number",
        description: "send the messages this many times",
        default: 1,
        min: 1,
        max: 100_000,
      },
      timeout: {
        ...timeoutFlag(5),
        description: "deadline in seconds for connecting, and for each answer",
      },
      retries: {
        type: "number",
        description: "retry budget for the whole run",
        default: 3,
        max: 1000,
      },
      interval: {
        type: "number",
        description: "seconds to wait between requests",
        default: 0,
        integer: false,
        max: 3600,
        value: "SECONDS",
      },
      heartbeat: {
        type: "number",
        description: "while waiting, send /ping every this many seconds (0: off)",
        default: 0,
        integer: false,
        max: 3600,
        value: "SECONDS",
      },
      split: { type: "boolean", description: `write each request in ${PIECE_BYTES}-byte pieces` },
      plain: { type: "boolean", description: "send no request ids (a retry may apply twice)" },
    },
  });
  const messages = flags.message.length > 0 ? flags.message : ["Hello"];
  const texts = Array.from({ length: flags.count }, () => messages).flat();
  await run(texts, flags);
}

interface Settings {
  host: string;
  port: number;
  timeout: number;
  retries: number;
  interval: number;
  heartbeat: number;
  split: boolean;
  plain: boolean;
}

async function run(texts: string[], settings: Settings) {
  const timeoutMs = settings.timeout * 1000;
  // Ids must not collide with another client's: a random prefix, then a number.
  const clientId = crypto.randomUUID().slice(0, 8);
  const stats = { attempts: 0, connections: 0, answered: 0, lost: 0 };
  let budget = settings.retries;
  let lastFailure: Failure | undefined;
  let session: Session | undefined;

  requests: for (const [index, text] of texts.entries()) {
    const number = index + 1;
    // True while the request goes over a connection that sat idle through a pause.
    let idle = false;
    if (index > 0 && settings.interval > 0) {
      session = await pause(
        session,
        settings.interval * 1000,
        settings.heartbeat * 1000,
        timeoutMs,
      );
      idle = session !== undefined;
    }
    const line = settings.plain ? text : `@${clientId}-${number} ${text}`;
    for (let retry = 0;; retry++) {
      stats.attempts++;
      const wasIdle = idle;
      idle = false;
      try {
        if (!session) {
          session = await Session.open(settings.host, settings.port, timeoutMs);
          stats.connections++;
        }
        console.log(`> #${number} ${text}${retry > 0 ? ` (retry ${retry})` : ""}`);
        const reply = await session.request(
          line,
          `the answer to #${number}`,
          timeoutMs,
          settings.split,
        );
        const shown = checkAnswer(reply, line, settings.plain);
        console.log(`< #${number} ${terminalSafe(shown)}`);
        stats.answered++;
        break;
      } catch (error) {
        const failure = asFailure(error);
        // TODO(exercise): first, close and forget `session` (see the TODO below).
        console.log(
          `! #${number} ${failure.message}${failure.osError ? ` [${failure.osError}]` : ""}`,
        );
        if (failure instanceof Rejected) {
          console.log(`  rejected by the server: not worth retrying: #${number} is lost`);
          stats.lost++;
          lastFailure = failure;
          break; // on with the next request
        }
        if (!failure.worthRetrying) {
          // A name that does not exist will not exist in 200 ms either.
          console.log(
            `  not worth retrying: giving up (${plural(texts.length - index, "request")} lost)`,
          );
          stats.lost += texts.length - index;
          lastFailure = failure;
          break requests;
        }
        // TODO(exercise): the retry. Above, close `session` and set it to undefined: never
        // reuse a connection after a failure, its state is unknown. Here:
        // - if the request went over a connection that sat idle (`wasIdle`) and failed with
        //   EOF, ECONNRESET or EPIPE (failure.osError), the server may have closed it for
        //   idling: print `  the connection had sat idle: the server may have closed it;
        //   reconnecting`, undo this retry (retry--) and `continue`: at once, no budget used;
        // - if `budget` is 0: print `  no retries left: #N is lost`, count it in stats.lost,
        //   remember it in lastFailure, and break (on with the next request);
        // - otherwise spend one retry of the budget, take the pause from backoff(retry),
        //   print `  retrying in W ms (B retries left)` ("1 retry left"), and sleep W ms.
        // Traps: retrying at once, or for ever (the budget is for the whole run, not per
        // request); reusing the connection that failed.
        break requests; // a placeholder: gives up at the first failure (remove it)
      }
    }
  }
  session?.close();
  const reconnects = Math.max(0, stats.connections - 1);
  console.log(
    `${plural(texts.length, "request")}: ${stats.answered} answered, ${stats.lost} lost; ` +
      `${plural(stats.attempts, "attempt")}, ${plural(reconnects, "reconnect")}`,
  );
  // The last failure is the exit message: one line, exit code 1.
  if (lastFailure) throw new LessonError(lastFailure.message);
}

/**
 * The pause before retry number `retry + 1`: exponential backoff (200 ms,
 * 400 ms, 800 ms, ... up to 5 s) with "equal jitter": half of it fixed, half
 * random, so that many clients that failed together do not all come back in
 * the same millisecond, and none comes back at once.
 */
export function backoff(retry: number, random = Math.random): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** retry);
  return Math.round(ceiling / 2 + random() * ceiling / 2);
}

/** One connection to the server, and the lines it has sent us. */
class Session {
  #conn: Deno.TcpConn;
  #lines: AsyncGenerator<string>;

  private constructor(conn: Deno.TcpConn, timeoutMs: number) {
    this.#conn = conn;
    this.#lines = readLines(conn, {
      maxLineBytes: MAX_ANSWER_BYTES,
      idleTimeoutMs: timeoutMs,
      what: "the server",
      requireNewline: true, // an answer without its LF was cut short
    });
  }

  /**
   * Connects within `timeoutMs`. Without our own deadline a connect to a
   * host that drops SYNs waits for the OS: about two minutes on Linux (six
   * SYN retries, `net.ipv4.tcp_syn_retries`).
   */
  static async open(host: string, port: number, timeoutMs: number): Promise<Session> {
    const signal = AbortSignal.timeout(timeoutMs);
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: host, port, signal });
    } catch (error) {
      const where = formatAddr({ transport: "tcp", hostname: host, port });
      if (signal.aborted) {
        throw new Failure(
          `could not connect to ${where}: no answer after ${timeoutMs / 1000} s: ` +
            "is the address right? is the server's queue full?",
          "our timeout",
        );
      }
      const name = osName(error);
      const permanent = name === "EAI_NONAME" || error instanceof Deno.errors.NotCapable;
      throw new Failure(connectError(error, host, port, 15).message, name, !permanent);
    }
    // Keepalive probes find a peer that vanished without a word (power cut,
    // cable pulled). They start after 2 hours idle by default on Linux, and
    // Deno cannot change that per socket: the heartbeat is the quick check.
    conn.setKeepAlive(true);
    return new Session(conn, timeoutMs);
  }

  /** Sends one line and returns the answer line, all within `timeoutMs`. */
  request(line: string, what: string, timeoutMs: number, split = false): Promise<string> {
    return withDeadline(this.#conn, timeoutMs, what, async () => {
      const bytes = utf8Encode(line + "\n");
      if (!split) await writeAll(this.#conn, bytes);
      else {
        for (let i = 0; i < bytes.length; i += PIECE_BYTES) {
          await writeAll(this.#conn, bytes.subarray(i, i + PIECE_BYTES));
          await sleep(PAUSE_MS);
        }
      }
      const next = await this.#lines.next();
      if (next.done) {
        throw new Failure("the server closed the connection before answering", "EOF");
      }
      return next.value;
    });
  }

  /** Closes the connection; one a deadline closed already is fine. */
  close() {
    closeQuietly(this.#conn);
  }
}

/**
 * Waits `ms` between two requests. With a heartbeat, sends `/ping` every
 * `heartbeatMs` and expects `pong` within the deadline: a server that has
 * stopped (frozen, overloaded, its machine gone) answers nothing, though TCP
 * may still look fine. Returns the session, or undefined if it died.
 */
async function pause(
  session: Session | undefined,
  ms: number,
  heartbeatMs: number,
  timeoutMs: number,
): Promise<Session | undefined> {
  let left = ms;
  while (left > 0) {
    const step = session && heartbeatMs > 0 ? Math.min(left, heartbeatMs) : left;
    await sleep(step);
    left -= step;
    if (!session || heartbeatMs === 0 || left <= 0) continue;
    const started = performance.now();
    try {
      const reply = await session.request("/ping", "the pong", timeoutMs);
      if (reply !== "pong") throw new Failure(`expected pong, got ${JSON.stringify(reply)}`);
      console.log(`~ heartbeat: pong after ${(performance.now() - started).toFixed(1)} ms`);
    } catch (error) {
      const failure = asFailure(error);
      console.log(`~ heartbeat failed: ${failure.message}: the server is not answering`);
      session.close();
      session = undefined; // the next request connects again
    }
  }
  return session;
}

/**
 * Checks that `reply` answers `line` (lesson 05's `N: reversed text`, after
 * the same id) and returns it without the id.
 */
export function checkAnswer(reply: string, line: string, plain: boolean): string {
  if (reply.startsWith("error: ")) {
    const said = `the server said: ${reply.slice(7)}`;
    // "server busy" (too many clients) may pass: worth a retry after a pause.
    // Any other error is about the request itself: it would be said again.
    throw reply === "error: server busy" ? new Failure(said) : new Rejected(said);
  }
  const id = plain ? "" : line.slice(0, line.indexOf(" ") + 1); // "@ID "
  const text = line.slice(id.length);
  const reversed = [...text].reverse().join("");
  const body = reply.slice(id.length);
  if (!reply.startsWith(id) || !/^\d+: /.test(body) || !body.endsWith(`: ${reversed}`)) {
    throw new Failure(`the answer does not match the request: ${JSON.stringify(reply)}`);
  }
  return body;
}

/** Any error of one attempt as a {@linkcode Failure} with its OS name; bugs are rethrown. */
function asFailure(error: unknown): Failure {
  if (error instanceof Failure) return error;
  if (error instanceof TimeoutError) return new Failure(error.message, "our timeout");
  const text = describeNetError(error);
  if (text === undefined) throw error;
  return new Failure(text, osName(error));
}

/** The OS name of a socket error: `ECONNREFUSED`, `ECONNRESET`, `EPIPE`, ... */
function osName(error: unknown): string | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") return code;
  // Deno gives name lookup failures no code; getaddrinfo's names for them:
  const message = error instanceof Error ? error.message : "";
  if (!/lookup address information/.test(message)) return undefined;
  if (/not known|no address/i.test(message)) return "EAI_NONAME"; // the name does not exist
  return /temporary/i.test(message) ? "EAI_AGAIN" : "EAI_FAIL"; // no answer from DNS
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Last, so that the classes above exist when main runs.
if (import.meta.main) await runMain(main);
