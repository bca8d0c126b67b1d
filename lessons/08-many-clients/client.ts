/**
 * Lesson 08 client: lesson 02's echo client, N times at once.
 *
 * Each client connects, sends the message, half-closes and reads the echo
 * until EOF. With `--clients N` all N run at the same time, on one event
 * loop, exactly the way the server serves them: each is an async function
 * paused at its own `await`. Then it prints how long each one waited for its
 * echo. Against lesson 02's one-at-a-time server, `--hold` makes the waiting
 * visible.
 *
 * An echo that is short (the server closed early) or different (the server
 * said something else, such as `server busy`) is a failure, and the whole
 * answer must arrive within `--timeout` seconds. Lesson 10 runs this same
 * client: it imports `main`.
 */
import {
  closeQuietly,
  connect,
  describeNetError,
  type Endpoint,
  LessonError,
  parseFlags,
  quote,
  runMain,
  timeoutFlag,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";

/** What happened to one client: its echo (or why it failed) and how long it waited. */
interface Outcome {
  reply: Uint8Array;
  error?: string;
  waitedMs: number;
}

/** Runs the client; `lesson` sets the default port (lesson 10 runs it with 10). */
export async function main(lesson: number, args: string[] = Deno.args): Promise<void> {
  await runMain(async () => {
    const flags = parseFlags(args, {
      lesson,
      role: "client",
      summary: "Sends a message to the echo server, half-closes, and prints what comes back; " +
        "--clients N does it N times at once and shows how long each waited.",
      flags: {
        message: { type: "string", description: "the text to send", default: "Hello, world" },
        clients: {
          type: "number",
          description: "how many clients to run at the same time",
          default: 1,
          min: 1,
          max: 10_000,
          value: "N",
        },
        hold: {
          type: "number",
          description: "once the echo is back, keep the connection open this long before " +
            "half-closing",
          default: 0,
          max: 3600,
          integer: false,
          value: "SECONDS",
        },
        timeout: timeoutFlag(10),
      },
      epilog: `Example: deno task lesson${String(lesson).padStart(2, "0")}-client --clients 3 ` +
        "--hold 1",
    });
    const payload = utf8Encode(flags.message);
    const endpoint = { host: flags.host, port: flags.port, lesson };
    const timing = { holdMs: flags.hold * 1000, timeoutMs: flags.timeout * 1000 };

    // Start every client, then wait for all of them. Nothing runs "in
    // parallel": each client runs until its next `await`, then the next one.
    const start = performance.now();
    const runs: Promise<Outcome>[] = [];
    for (let i = 0; i < flags.clients; i++) runs.push(oneClient(endpoint, payload, timing, start));
    const outcomes = await Promise.all(runs);

    if (flags.clients === 1) {
      // One client: lesson 02's output, or one line saying what went wrong.
      const [outcome] = outcomes;
      if (outcome.error) throw new LessonError(outcome.error);
      console.log(`Received ${quote(decodeForDisplay(outcome.reply))}`);
      return;
    }
    // The same failure for everyone (the server is not running): say it once.
    const errors = new Set(outcomes.map((o) => o.error));
    if (errors.size === 1 && outcomes[0].error) throw new LessonError(outcomes[0].error);

    for (const [i, outcome] of outcomes.entries()) {
      const after = `after ${ms(outcome.waitedMs)}`;
      console.log(
        outcome.error
          ? `client ${i + 1}: failed ${after}: ${outcome.error}`
          : `client ${i + 1}: Received ${quote(decodeForDisplay(outcome.reply))} ${after}`,
      );
    }
    const echoed = outcomes.filter((o) => !o.error).length;
    const waits = outcomes.map((o) => o.waitedMs).sort((a, b) => a - b);
    const median = waits[Math.floor((waits.length - 1) / 2)];
    const result = echoed === outcomes.length ? "all echoed" : `${echoed} echoed correctly`;
    console.log(
      `${outcomes.length} clients, ${result}: waited ${ms(waits[0])} at least, ` +
        `${ms(median)} median, ${ms(waits.at(-1)!)} at most`,
    );
    if (echoed !== outcomes.length) Deno.exit(1);
  });
}

/**
 * One client: connect, send, half-close, read until EOF, check the echo.
 * Never throws for a network failure: that is an outcome, so one bad
 * connection does not hide what happened to the others.
 */
async function oneClient(
  endpoint: Endpoint,
  payload: Uint8Array,
  { holdMs, timeoutMs }: { holdMs: number; timeoutMs: number },
  start: number,
): Promise<Outcome> {
  let conn: Deno.TcpConn | undefined;
  // Resolved with the time the whole echo was in (or EOF came).
  const echoed = Promise.withResolvers<number>();
  try {
    conn = await connect(endpoint);
    const c = conn;

    // Step 1, sending: write everything, wait for the echo and --hold if
    // asked, then half-close: "I have nothing more to send".
    const send = async () => {
      try {
        await writeAll(c, payload);
        if (holdMs > 0) {
          await echoed.promise;
          await new Promise((resolve) => setTimeout(resolve, holdMs));
        }
        await c.closeWrite();
      } catch (error) {
        // The server may hang up before we are done sending ("server busy",
        // idle timeout). Then what it said matters more than our failed write.
        if (describeNetError(error) === undefined) throw error;
      }
    };
    // Step 2, at the same time: read until EOF (the echo may start before
    // we have sent everything). The deadline covers the whole answer: a
    // server that sends one byte every few seconds cannot keep us here.
    const receive = () => readReply(c, payload.length, echoed.resolve);
    const [reply] = await withDeadline(
      conn,
      timeoutMs + holdMs,
      "the echo",
      () => Promise.all([receive(), send()]),
    );
    echoed.resolve(performance.now()); // for an EOF before the whole echo
    // Step 3: is it the echo?
    const waitedMs = await echoed.promise - start;
    return { reply, error: checkEcho(payload, reply), waitedMs };
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    return { reply: new Uint8Array(), error: reason, waitedMs: performance.now() - start };
  } finally {
    if (conn) closeQuietly(conn);
  }
}

/**
 * Reads until EOF and returns what came: at most `expected` bytes, or 1 KiB
 * for a short message (so a longer answer such as "server busy" still
 * fits). Calls `onEchoed(time)` once `expected` bytes are in.
 */
async function readReply(
  conn: Deno.TcpConn,
  expected: number,
  onEchoed: (time: number) => void,
): Promise<Uint8Array> {
  const maxBytes = Math.max(expected, 1024);
  const reply = new Uint8Array(maxBytes + 1); // one spare byte to notice "too much"
  let received = 0;
  while (true) {
    if (received >= expected) onEchoed(performance.now()); // only the first call counts
    let n: number | null;
    try {
      n = await conn.read(reply.subarray(received));
    } catch (error) {
      // A server that closes without reading all we sent makes the kernel
      // send a reset (RST) instead of a normal end (FIN). What it said before
      // (e.g. "server busy") is still the reply.
      if (received > 0 && error instanceof Deno.errors.ConnectionReset) break;
      throw error;
    }
    if (n === null) break;
    received += n;
    if (received > maxBytes) throw new LessonError(`the reply is longer than ${maxBytes} bytes`);
  }
  return reply.slice(0, received);
}

/** Why `reply` is not the echo of `sent`, or undefined if it is. */
export function checkEcho(sent: Uint8Array, reply: Uint8Array): string | undefined {
  const same = (length: number) => reply.subarray(0, length).every((byte, i) => byte === sent[i]);
  if (reply.length === sent.length && same(sent.length)) return undefined;
  if (reply.length < sent.length && same(reply.length)) {
    return `the server closed the connection after echoing ${reply.length} of ` +
      `${sent.length} bytes`;
  }
  return `got ${quote(decodeForDisplay(reply))} instead of the echo`;
}

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

/** Text for display; bytes that are not UTF-8 become "�" rather than an error. */
function decodeForDisplay(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

if (import.meta.main) await main(8);
