/**
 * `deno task lesson14-attack`: the amplification attack on lesson 14's
 * server, measured on loopback (so the "victim" is this program itself: on
 * loopback nobody can forge a source address, and we never try).
 *
 * It stores 1,000 bytes under the empty key, then sends `--count` empty
 * datagrams over `--seconds`, each asking for them, and counts the bytes on
 * the wire each way (each datagram's payload plus 28 bytes of IPv4 and UDP
 * headers). Run it against `deno task lesson14-server` and against
 * `deno task lesson14-server --amplification-limit 0`.
 */
import { formatAddr, LessonError, parseFlags, runMain, utf8Encode } from "../../lib/mod.ts";
import { wireBytes } from "./amplification.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 14,
    role: "client",
    summary: "Measures how many bytes lesson 14's server sends back for empty requests " +
      "(the amplification attack, on loopback, against yourself).",
    flags: {
      count: { type: "number", description: "empty requests to send", default: 5000, min: 1 },
      seconds: {
        type: "number",
        description: "spread them over this many seconds",
        default: 2,
        min: 0.1,
        max: 60,
        integer: false,
      },
    },
  });
  const ipv6 = flags.host.includes(":");
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: ipv6 ? "::1" : "127.0.0.1",
    port: 0,
  });
  const server: Deno.NetAddr = { transport: "udp", hostname: flags.host, port: flags.port };
  const value = utf8Encode("=" + "v".repeat(999));
  let sent = 0;
  let received = 0;
  let replies = 0;
  const loop = (async () => {
    try {
      while (true) {
        const [data, from] = await socket.receive(new Uint8Array(1001));
        const addr = from as Deno.NetAddr;
        if (addr.port !== server.port) continue; // not the server's: not counted
        received += wireBytes(data.length, ipv6);
        replies++;
      }
    } catch {
      // closed
    }
  })();
  const start = performance.now();
  sent += wireBytes(await socket.send(value, server), ipv6);
  const batches = Math.max(1, Math.round(flags.seconds * 50)); // one batch every 20 ms
  const empty = new Uint8Array(0);
  for (let batch = 0; batch < batches; batch++) {
    const until = Math.round((batch + 1) * flags.count / batches);
    for (let i = Math.round(batch * flags.count / batches); i < until; i++) {
      sent += wireBytes(await socket.send(empty, server), ipv6);
    }
    const next = start + (batch + 1) * 20;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
  }
  // Wait for the stragglers: until nothing has come for half a second.
  let seen = -1;
  while (seen !== replies) {
    seen = replies;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const seconds = (performance.now() - start - 500) / 1000;
  socket.close();
  await loop;
  if (replies === 0) {
    throw new LessonError(`no reply from ${formatAddr(server)}: is lesson14-server running?`);
  }
  const n = (x: number) => x.toLocaleString("en-US");
  console.log(`sent ${n(flags.count + 1)} datagrams, ${n(sent)} bytes on the wire`);
  console.log(
    `got ${n(replies)} replies, ${n(received)} bytes on the wire, in ${seconds.toFixed(1)} s`,
  );
  console.log(`amplification: ${(received / sent).toFixed(1)}×`);
});
