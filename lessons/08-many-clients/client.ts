/**
 * Lesson 08 client: lesson 02's echo client, N times at once.
 *
 * Each client connects, sends the message, half-closes and reads the echo
 * until EOF. With `--clients N` all N run at the same time, on one event
 * loop, exactly the way the server serves them: each is an async function
 * paused at its own `await`. Then it prints how long each one waited for its
 * echo. Against lesson 02's one-at-a-time server, `--hold` makes the waiting
 * visible.
 */
import {
  closeQuietly,
  connect,
  describeNetError,
  LessonError,
  parseFlags,
  quote,
  readWithTimeout,
  runMain,
  utf8Encode,
  writeAll,
} from "../../lib/mod.ts";

/** How long a client waits for each read before giving up. */
const READ_TIMEOUT_MS = 10_000;

/** What happened to one client. */
type Outcome =
  | { ok: true; reply: Uint8Array; waitedMs: number }
  | { ok: false; error: string; waitedMs: number };

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 8,
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
    },
    epilog: "Example: deno task lesson08-client --clients 3 --hold 1",
  });
  const payload = utf8Encode(flags.message);
  const holdMs = flags.hold * 1000;
  const endpoint = { host: flags.host, port: flags.port, lesson: 8 };

  // Start every client, then wait for all of them. Nothing runs "in
  // parallel": each client runs until its next `await`, then the next one.
  const start = performance.now();
  const runs: Promise<Outcome>[] = [];
  for (let i = 0; i < flags.clients; i++) runs.push(oneClient(endpoint, payload, holdMs, start));
  const outcomes = await Promise.all(runs);

  if (flags.clients === 1) {
    // One client: exactly lesson 02's output.
    const [outcome] = outcomes;
    if (!outcome.ok) throw new LessonError(outcome.error);
    console.log(`Received ${quote(decodeForDisplay(outcome.reply))}`);
    return;
  }
  // The same failure for everyone (the server is not running): say it once.
  const errors = new Set(outcomes.map((o) => o.ok ? "" : o.error));
  if (errors.size === 1 && !outcomes[0].ok) throw new LessonError(outcomes[0].error);

  let echoed = 0;
  for (const [i, outcome] of outcomes.entries()) {
    const after = `after ${ms(outcome.waitedMs)}`;
    if (outcome.ok) {
      console.log(`client ${i + 1}: Received ${quote(decodeForDisplay(outcome.reply))} ${after}`);
      if (sameBytes(outcome.reply, payload)) echoed++;
    } else {
      console.log(`client ${i + 1}: failed ${after}: ${outcome.error}`);
    }
  }
  const waits = outcomes.map((o) => o.waitedMs).sort((a, b) => a - b);
  const median = waits[Math.floor((waits.length - 1) / 2)];
  const result = echoed === outcomes.length ? "all echoed" : `${echoed} echoed correctly`;
  console.log(
    `${outcomes.length} clients, ${result}: waited ${ms(waits[0])} at least, ` +
      `${ms(median)} median, ${ms(waits.at(-1)!)} at most`,
  );
  if (echoed !== outcomes.length) Deno.exit(1);
});

/**
 * One client: connect, send, half-close, read the echo until EOF. Never
 * throws for a network failure: that is an outcome, so one bad connection
 * does not hide what happened to the others.
 */
async function oneClient(
  endpoint: { host: string; port: number; lesson: number },
  payload: Uint8Array,
  holdMs: number,
  start: number,
): Promise<Outcome> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await connect(endpoint);
    // Read while we write: the echo may start before we have sent everything.
    const reading = readEcho(conn, payload.length);
    try {
      await writeAll(conn, payload);
      if (holdMs > 0) {
        await reading.echoed;
        await new Promise((resolve) => setTimeout(resolve, holdMs));
      }
      // Half-close: "I have nothing more to send". The echo still comes back.
      await conn.closeWrite();
    } catch (error) {
      // The server may hang up before we are done sending ("server busy",
      // idle timeout). Then what it said matters more than our failed write.
      if (describeNetError(error) === undefined) throw error;
    }
    const reply = await reading.all;
    return { ok: true, reply, waitedMs: await reading.echoed - start };
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    return { ok: false, error: reason, waitedMs: performance.now() - start };
  } finally {
    if (conn) closeQuietly(conn);
  }
}

/**
 * Reads until EOF: at most `expected` bytes, or 1 KiB for a short message
 * (so a longer answer such as "server busy" still fits), and at most
 * READ_TIMEOUT_MS per read. `echoed` resolves with the time the whole echo
 * had arrived (or EOF came), or rejects like `all`.
 */
function readEcho(conn: Deno.TcpConn, expected: number) {
  const maxBytes = Math.max(expected, 1024);
  let markEchoed: (time: number) => void = () => {};
  let failed: (error: unknown) => void = () => {};
  const echoed = new Promise<number>((resolve, reject) => {
    markEchoed = resolve;
    failed = reject;
  });
  echoed.catch(() => {}); // awaiting it is optional: `all` reports the same error
  const all = (async () => {
    const reply = new Uint8Array(maxBytes + 1); // one spare byte to notice "too much"
    let received = 0;
    while (true) {
      if (received >= expected) markEchoed(performance.now()); // no effect after the first time
      let n: number | null;
      try {
        n = await readWithTimeout(conn, reply.subarray(received), READ_TIMEOUT_MS, "the echo");
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
  })();
  all.then(() => markEchoed(performance.now()), failed);
  return { all, echoed };
}

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Text for display; bytes that are not UTF-8 become "�" rather than an error. */
function decodeForDisplay(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
