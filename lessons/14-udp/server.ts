/**
 * Lesson 14 server: one request per datagram, one reply per datagram.
 *
 * There is no connection and no accept: one socket receives every client's
 * datagrams, each with the address it came from, and the reply is sent back
 * to that address. `--loss` and `--delay` drop and delay replies on purpose,
 * so you can watch what UDP does not promise: that anything arrives, or
 * arrives in order. `--amplification-limit` (amplification.ts) keeps us from
 * sending any address much more than it sent us: a forged source address
 * must not turn this server into a flood cannon.
 */
import {
  describeNetError,
  formatAddr,
  listenError,
  parseFlags,
  quote,
  runMain,
  ThrottledLog,
  utf8Decode,
  utf8Encode,
} from "../../lib/mod.ts";
import { type Answer, MAX_DATAGRAM_BYTES, seededRandom, Store } from "./protocol.ts";
import { ALLOWANCE_BYTES, AmplificationLimit, wireBytes } from "./amplification.ts";

/** The most replies waiting for their --delay at once; more are dropped. */
const MAX_DELAYED = 1000;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 14,
    role: "server",
    summary: "Answers ping and key-value requests over UDP, one reply per datagram. " +
      "--loss and --delay make the network worse on purpose.",
    flags: {
      loss: {
        type: "number",
        description: "drop this percentage of replies",
        default: 0,
        max: 100,
        integer: false,
        value: "PERCENT",
      },
      delay: {
        type: "number",
        description: "delay each reply by a random time from 0 to MS",
        default: 0,
        max: 60_000,
        value: "MS",
      },
      seed: {
        type: "number",
        description: "repeatable --loss and --delay (same seed, same drops)",
      },
      "max-keys": { type: "number", description: "most keys stored", default: 10_000, min: 1 },
      "amplification-limit": {
        type: "number",
        description: `send an address at most N times the bytes it sent us, plus ${
          ALLOWANCE_BYTES / 1024
        } KiB a second (0: no limit)`,
        default: 3,
        max: 1000,
        integer: false,
        value: "N",
      },
    },
  });
  const random = flags.seed === undefined ? Math.random : seededRandom(flags.seed);
  const store = new Store(flags["max-keys"]);
  // A flood of datagrams must not turn into a flood of log lines.
  const log = new ThrottledLog();
  const limit = new AmplificationLimit(flags["amplification-limit"]);

  let socket: Deno.DatagramConn;
  try {
    socket = Deno.listenDatagram({ transport: "udp", hostname: flags.host, port: flags.port });
  } catch (error) {
    throw listenError(error, flags.host, flags.port);
  }
  console.log(`listening on ${formatAddr(socket.addr)}`);

  let delayed = 0;
  const send = async (reply: Uint8Array, to: Deno.Addr) => {
    try {
      await socket.send(reply, to);
    } catch (error) {
      // A reply that cannot be sent is that one client's problem, not ours.
      log.event(`could not reply to ${formatAddr(to)}: ${describeNetError(error) ?? error}`);
    }
  };

  // One byte more than the limit: if a datagram fills the whole buffer, it
  // was longer than MAX_DATAGRAM_BYTES (the kernel cut off the rest).
  const buffer = new Uint8Array(MAX_DATAGRAM_BYTES + 1);
  while (true) {
    let data: Uint8Array, from: Deno.Addr;
    try {
      [data, from] = await socket.receive(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.BadResource) throw error; // the socket is gone: a bug
      // On some systems an ICMP error from an earlier send surfaces here;
      // it says nothing about the next datagram, so keep going.
      log.event(`receive failed: ${describeNetError(error) ?? error}`);
      continue;
    }
    const peer = formatAddr(from);
    // Every datagram counts, even one we ignore: it is what the address sent us.
    const { hostname } = from as Deno.NetAddr;
    const ipv6 = hostname.includes(":");
    limit.received(hostname, wireBytes(data.length, ipv6));
    if (data.length > MAX_DATAGRAM_BYTES) {
      log.event(`ignored a datagram from ${peer}: longer than ${MAX_DATAGRAM_BYTES} bytes`);
      continue;
    }
    let text: string;
    try {
      text = utf8Decode(data);
    } catch {
      log.event(`ignored a datagram from ${peer}: not UTF-8 text`);
      continue;
    }
    // `nc -u` sends each line with its LF: take it off, and put one on the
    // reply (if it still fits), so typing at nc works.
    const newline = /\r?\n$/.exec(text)?.[0] ?? "";
    const answer = store.answer(text.slice(0, text.length - newline.length));
    const body = utf8Encode(answer.reply); // never longer than the request that stored it
    const reply = newline && body.length < MAX_DATAGRAM_BYTES
      ? utf8Encode(answer.reply + "\n")
      : body;

    const what = describe(answer, peer);
    if (random() * 100 < flags.loss) {
      log.event(`${what}: reply dropped (--loss)`);
    } else if (!limit.maySend(hostname, wireBytes(reply.length, ipv6))) {
      log.event(`${what}: reply withheld (--amplification-limit: it sent too little for it)`);
    } else if (flags.delay > 0) {
      if (delayed >= MAX_DELAYED) {
        log.event(`${what}: reply dropped (${MAX_DELAYED} replies already delayed)`);
        continue;
      }
      const ms = Math.round(random() * flags.delay);
      log.event(`${what}: reply in ${ms} ms`);
      delayed++;
      setTimeout(() => send(reply, from).finally(() => delayed--), ms);
    } else {
      log.event(what);
      await send(reply, from);
    }
  }
});

/** `ping 3 from HOST:PORT`, `insert "a" from ...`: one request, for the log. */
function describe({ request }: Answer, peer: string): string {
  if (request.kind === "ping") return `ping ${request.seq} from ${peer}`;
  const key = quote(request.key.length > 40 ? request.key.slice(0, 40) + "…" : request.key);
  if (request.kind === "retrieve") return `retrieve ${key} from ${peer}`;
  if (request.stored) return `insert ${key} from ${peer}`;
  const why = request.key === "version" ? "version is read-only" : "the store is full";
  return `insert ${key} from ${peer}: not stored, ${why}`;
}
