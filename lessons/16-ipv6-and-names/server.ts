/**
 * Lesson 16 server: who are you, in which family?
 *
 * It listens on one address: IPv4 (`--host 127.0.0.1`, the default), IPv6
 * (`--host ::1`) or every address of both families (`--host ::`, a
 * "dual-stack" socket, which sees IPv4 clients as `::ffff:127.0.0.1`). It
 * answers each line a client sends with one line naming the client's
 * address exactly as the socket reports it, and its family.
 *
 * It also runs the lesson's tiny DNS server (dns.ts) on UDP, on 127.0.0.1
 * and the same port number as the TCP listener: TCP port 65416 and UDP port
 * 65416 are two different sockets, as DNS itself uses port 53 for both. The
 * client's `--dns` asks it, so names work the same on every machine, offline.
 */
import {
  closeQuietly,
  describeNetError,
  formatAddr,
  idleTimeoutFlag,
  LessonError,
  listenError,
  maxConnectionsFlag,
  parseFlags,
  peerLog,
  plural,
  readLines,
  runMain,
  serveEach,
  ThrottledLog,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import { addRecords, lessonZone, serveDns } from "./dns.ts";
import { familyOf } from "./family.ts";

/** A line from a client is a greeting, not a document: 1 KiB is plenty. */
const MAX_LINE_BYTES = 1024;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 16,
    role: "server",
    summary: "Answers each line with the client's address and family as this socket sees it. " +
      "Try --host ::1 (IPv6 only) or --host :: (both families). Also answers DNS questions " +
      "about a few names over UDP on 127.0.0.1, on the same port number.",
    flags: {
      "no-dns": { type: "boolean", description: "do not run the DNS server" },
      record: {
        type: "list",
        description: "add a DNS name, e.g. mine.test=::1",
        value: "NAME=ADDRESS",
      },
      "idle-timeout": idleTimeoutFlag(300),
      "max-connections": maxConnectionsFlag(500),
    },
  });
  const zone = addRecords(lessonZone(), flags.record);
  const { tcp, udp } = listenTwins(flags.host, flags.port, !flags["no-dns"]);
  console.log(`listening on ${formatAddr(tcp.addr)}`);
  // A flood of DNS datagrams must not become a flood of log lines.
  const log = new ThrottledLog();
  if (udp) {
    console.log(`DNS on udp ${formatAddr(udp.addr)}: ${[...zone.keys()].join(", ")}`);
    serveDns(udp, zone, (line) => log.event(line)); // runs until the process ends
  }
  const idleTimeoutMs = flags["idle-timeout"] * 1000;
  await serveEach(tcp, (conn) => serve(conn, idleTimeoutMs), {
    maxConnections: flags["max-connections"],
    log: (line) => log.event(line),
  });
});

/**
 * Listens on TCP `host:port` and, for the DNS server, on UDP 127.0.0.1 with
 * the same port number. With `--port 0` the system picks the TCP port, and
 * that number may be taken on UDP: then we close and pick again.
 */
function listenTwins(host: string, port: number, dns: boolean) {
  for (let attempt = 1;; attempt++) {
    let tcp: Deno.TcpListener;
    try {
      tcp = Deno.listen({ hostname: host, port });
    } catch (error) {
      throw listenError(error, host, port);
    }
    if (!dns) return { tcp, udp: undefined };
    const udpPort = (tcp.addr as Deno.NetAddr).port;
    try {
      const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: udpPort });
      return { tcp, udp };
    } catch (error) {
      tcp.close();
      if (port === 0 && error instanceof Deno.errors.AddrInUse && attempt < 10) continue;
      if (error instanceof Deno.errors.AddrInUse) {
        throw new LessonError(
          `udp port ${udpPort} on 127.0.0.1 is already in use, so the DNS server cannot start: ` +
            "is another lesson 16 server running? stop it, or add --no-dns",
        );
      }
      throw listenError(error, "127.0.0.1", udpPort);
    }
  }
}

/** The answer to every line: `you are ::ffff:127.0.0.1 port 50412, IPv4-mapped`. */
function whoAreYou(addr: Deno.NetAddr): string {
  return `you are ${addr.hostname} port ${addr.port}, ${familyOf(addr.hostname)}`;
}

async function serve(conn: Deno.TcpConn, idleTimeoutMs: number) {
  const peer = formatAddr(conn.remoteAddr);
  const me = formatAddr(conn.localAddr);
  peerLog.event(`connection from ${peer} (${familyOf(conn.remoteAddr.hostname)}) to ${me}`);
  let count = 0;
  try {
    const options = { maxLineBytes: MAX_LINE_BYTES, idleTimeoutMs, what: "the client" };
    for await (const _line of readLines(conn, options)) {
      // A client that writes but never reads cannot hold us: the write times out.
      const answer = utf8Encode(whoAreYou(conn.remoteAddr) + "\n");
      await writeAllWithTimeout(conn, answer, idleTimeoutMs, "the client");
      count++;
    }
    peerLog.event(`closed connection from ${peer} after ${plural(count, "line")}`);
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    peerLog.event(`closed connection from ${peer} after ${plural(count, "line")}: ${reason}`);
  } finally {
    closeQuietly(conn);
  }
}
