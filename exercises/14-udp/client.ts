// deno-lint-ignore-file no-unused-vars prefer-const require-await -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 14: retrying a request with exponential backoff is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 14`:
 * lesson 14's own tests check your file in the lesson's place.
 *
 * Lesson 14 client: datagrams to the lesson 14 server.
 *
 * - `--ping N` sends N pings, one every `--interval` ms, prints each reply's
 *   round-trip time, then the loss and min/avg/max, like the `ping` tool;
 * - `--set KEY=VALUE` / `--get KEY` sends one request and waits for its
 *   reply; when none comes in time it sends again, waiting twice as long each
 *   time (exponential backoff), at most `--tries` times;
 * - with none of these, each line of standard input is sent as one datagram
 *   and every reply is printed as it comes.
 *
 * UDP never says "connection refused": nothing is connected. A missing server
 * looks exactly like a lost datagram, so every wait here has a time limit.
 */
import {
  formatAddr,
  LessonError,
  parseFlags,
  plural,
  quote,
  runMain,
  terminalSafe,
  UsageError,
  utf8Encode,
} from "../../lib/mod.ts";
import { readTerminalLines } from "../../lib/terminal.ts";
import { MAX_DATAGRAM_BYTES } from "./protocol.ts";
import { Replies } from "./replies.ts";

/** The largest UDP payload over IPv4 (65,535 minus the IP and UDP headers). */
const MAX_UDP_PAYLOAD = 65_507;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 14,
    role: "client",
    summary: "Talks to the lesson 14 server over UDP: --ping N, --set KEY=VALUE or --get KEY; " +
      "with none of these, sends each line of standard input as one datagram.",
    flags: {
      ping: { type: "number", description: "send N pings", min: 1, max: 100_000, value: "N" },
      interval: {
        type: "number",
        description: "time between pings",
        default: 1000,
        max: 60_000,
        value: "MS",
      },
      set: { type: "string", description: "store VALUE under KEY", value: "KEY=VALUE" },
      get: { type: "string", description: "print what KEY holds", value: "KEY" },
      timeout: {
        type: "number",
        description: "wait this long for a reply (doubled on each new try)",
        default: 0.5,
        min: 0.01,
        max: 60,
        integer: false,
        value: "SECONDS",
      },
      tries: {
        type: "number",
        description: "most tries of --set or --get",
        default: 4,
        min: 1,
        max: 10,
      },
    },
  });
  const modes = [flags.ping !== undefined, flags.set !== undefined, flags.get !== undefined];
  if (modes.filter(Boolean).length > 1) throw new UsageError("choose one of --ping, --set, --get");
  if (flags.set !== undefined && !flags.set.includes("=")) {
    throw new UsageError(`--set needs KEY=VALUE, got ${quote(flags.set)}`);
  }
  if (flags.get?.includes("=")) {
    throw new UsageError("--get KEY cannot contain =: a request with = is an insert");
  }
  const request = flags.set ?? flags.get;
  if (request !== undefined && utf8Encode(request).length > MAX_DATAGRAM_BYTES) {
    throw new UsageError(
      `a request is at most ${MAX_DATAGRAM_BYTES} bytes: the server ignores longer ones`,
    );
  }

  // Names are lesson 16: here the host is an address, and `localhost` is 127.0.0.1.
  const host = flags.host === "localhost" ? "127.0.0.1" : flags.host;
  if (!/^[\d.]+$|:/.test(host)) {
    throw new UsageError(
      `--host must be an IP address such as 127.0.0.1 or ::1, got ${quote(host)}`,
    );
  }
  const server: Deno.NetAddr = { transport: "udp", hostname: host, port: flags.port };
  // A UDP client binds a socket too, on a port the system picks; on loopback,
  // of the same family (IPv4 or IPv6) as the server's address.
  const local = host.includes(":") ? "::1" : "127.0.0.1";
  let socket: Deno.DatagramConn;
  try {
    socket = Deno.listenDatagram({ transport: "udp", hostname: local, port: 0 });
  } catch (error) {
    throw new LessonError(`could not open a UDP socket on ${local}: ${(error as Error).message}`);
  }
  const replies = new Replies(socket, server, MAX_DATAGRAM_BYTES);
  const exchange: Exchange = { socket, server, replies, timeoutMs: flags.timeout * 1000 };
  try {
    if (flags.ping !== undefined) await ping(exchange, flags.ping, flags.interval);
    else if (request !== undefined) await ask(exchange, request, flags.tries);
    else await sendLines(exchange);
  } finally {
    socket.close();
    await replies.finished();
  }
});

interface Exchange {
  socket: Deno.DatagramConn;
  server: Deno.NetAddr;
  replies: Replies;
  timeoutMs: number;
}

/** What to say when no reply came at all. */
function noServerHint(server: Deno.NetAddr): string {
  return `is the server running at ${formatAddr(server)}? ` +
    "(UDP cannot tell a missing server from a lost datagram) " +
    "start it with: deno task lesson14-server";
}

/** `--ping N`: send pings at an interval, time each pong, then print statistics. */
async function ping(
  { socket, server, replies, timeoutMs }: Exchange,
  count: number,
  interval: number,
) {
  const where = formatAddr(server);
  console.log(`PING ${where}: ${count} pings, one every ${interval} ms`);
  const stamps: string[] = []; // stamps[seq]: the TIMESTAMP sent with ping seq
  const received = new Set<number>();
  const duplicates = new Set<number>();
  const rtts: number[] = [];
  let highest = 0;
  let nextSend = performance.now();
  let sent = 0;
  while (true) {
    const now = performance.now();
    if (sent < count && now >= nextSend) {
      stamps[++sent] = now.toFixed(3); // our own clock, in ms; the server only echoes it
      await socket.send(utf8Encode(`ping ${sent} ${stamps[sent]}`), server);
      nextSend += interval;
      continue;
    }
    if (sent === count && received.size === count) break;
    // Wait for replies until the next ping is due, or, after the last, --timeout.
    const deadline = sent < count ? nextSend : nextSend - interval + timeoutMs;
    const reply = await replies.next(deadline);
    if (reply === undefined) {
      if (sent === count) break;
      continue;
    }
    const match = reply.match(/^pong (\d{1,15}) (\S+)$/);
    const seq = Number(match?.[1]);
    // The echoed SEQ and TIMESTAMP must be a ping we sent: that is the request id.
    if (!match || !(seq >= 1 && seq <= sent) || stamps[seq] !== match[2]) {
      replies.ignored++;
      continue;
    }
    const rtt = performance.now() - Number(match[2]);
    if (received.has(seq)) {
      // Print a duplicate once; a server repeating itself cannot flood us.
      if (duplicates.has(seq)) replies.ignored++;
      else console.log(`pong from ${where}: seq=${seq} (duplicate)`);
      duplicates.add(seq);
      continue;
    }
    received.add(seq);
    rtts.push(rtt);
    const late = seq < highest ? " (out of order)" : "";
    highest = Math.max(highest, seq);
    console.log(`pong from ${where}: seq=${seq} time=${rtt.toFixed(3)} ms${late}`);
  }

  const lost = sent - received.size;
  console.log(`--- ${where} ping statistics ---`);
  const ignored = replies.ignored > 0 ? `, ${replies.ignored} other datagrams ignored` : "";
  // Replies that arrived while our queue was full: answered, but thrown away here.
  const dropped = replies.dropped > 0
    ? `, ${replies.dropped} ${
      replies.dropped === 1 ? "reply" : "replies"
    } dropped (client queue full)`
    : "";
  console.log(
    `${sent} sent, ${received.size} received, ${+(lost * 100 / sent).toFixed(1)}% loss` +
      ignored + dropped,
  );
  if (rtts.length === 0) {
    throw new LessonError(`no reply to any of ${sent} pings: ${noServerHint(server)}`);
  }
  const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
  const ms = (value: number) => `${value.toFixed(3)} ms`;
  console.log(`rtt min ${ms(Math.min(...rtts))}, avg ${ms(avg)}, max ${ms(Math.max(...rtts))}`);
}

/**
 * `--set KEY=VALUE` or `--get KEY`: one request, sent again after a timeout
 * that doubles each time, at most `tries` times. A retry is safe because both
 * requests are idempotent: doing one twice has the same effect as once.
 */
async function ask(
  { socket, server, replies, timeoutMs }: Exchange,
  request: string,
  tries: number,
) {
  const equals = request.indexOf("=");
  const key = equals === -1 ? request : request.slice(0, equals);
  let wait = timeoutMs;
  let waited = 0;
  // TODO(exercise): up to `tries` times, print `> REQUEST` and send it, then wait
  // `wait` ms (replies.next(deadline)) for a reply that starts with `KEY=` (count any
  // other in replies.ignored); print `< REPLY` and return (a --set answered with
  // another value throws `not stored: the server kept REPLY (WHY)`), or else add
  // `wait` to `waited`, double it, and say `no reply within HALF ms: sending again,
  // waiting up to WAIT ms (try N of TRIES)` before the next try.
  const seconds = +(waited / 1000).toFixed(2);
  const triesText = tries === 1 ? "1 try" : `${tries} tries`;
  throw new LessonError(
    `no reply after ${triesText} over ${seconds} s: ${noServerHint(server)}`,
  );
}

/** No mode: every line of standard input is one datagram; print what comes back. */
async function sendLines({ socket, server, replies, timeoutMs }: Exchange) {
  if (Deno.stdin.isTerminal()) {
    console.error(
      "each line you type is sent as one datagram; Ctrl-D (Ctrl-Z Enter on Windows) ends",
    );
  }
  let sent = 0;
  let received = 0;
  let skipped = 0; // lines too long for one datagram: not sent
  let inputDone = false;
  let endDeadline = Infinity;
  // Print replies while we read: they come whenever they come, or never.
  const printer = (async () => {
    while (true) {
      const reply = await replies.next(inputDone ? endDeadline : performance.now() + 100);
      if (reply !== undefined) {
        // At most one reply per datagram sent; more is not from our server's rules.
        if (received < sent) {
          received++;
          console.log(`< ${terminalSafe(reply)}`);
        } else {
          replies.ignored++;
        }
      } else if (inputDone && (received >= sent || performance.now() >= endDeadline)) {
        return;
      }
    }
  })();
  try {
    const tooLong = (bytes: number) => {
      skipped++;
      console.error(
        `that line is ${bytes} bytes, more than the limit of ${MAX_UDP_PAYLOAD}: not sent`,
      );
    };
    for await (const line of readTerminalLines(MAX_UDP_PAYLOAD, tooLong)) {
      // A long line is shown cut short (the datagram still carries all of it);
      // an empty one is a real datagram too, with 0 bytes in it.
      const bytes = utf8Encode(line);
      const shown = line === ""
        ? "(an empty datagram)"
        : line.length > 60
        ? `${line.slice(0, 40)}… (${bytes.length} bytes)`
        : line;
      console.log(`> ${shown}`);
      sent++;
      await socket.send(bytes, server);
    }
  } finally {
    inputDone = true;
    endDeadline = performance.now() + timeoutMs;
    await printer;
  }
  if (received < sent) {
    throw new LessonError(
      `no reply to ${sent - received} of ${plural(sent, "datagram")} within ${timeoutMs} ms: ` +
        "lost, ignored by the server, or no server at all (UDP cannot tell which)",
    );
  }
  // A line we could not send is a failure too, even if every other one was answered.
  if (skipped > 0) {
    throw new LessonError(
      `${plural(skipped, "line")} not sent: longer than ${MAX_UDP_PAYLOAD} bytes, ` +
        "the most one UDP datagram can carry",
    );
  }
  if (sent === 0) throw new LessonError("nothing was sent: standard input had no lines");
}
