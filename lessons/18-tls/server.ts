/**
 * Lesson 18 server: lesson 05's line service over TLS.
 *
 * `Deno.listenTls` instead of `Deno.listen`, with a certificate and its
 * private key; everything after that is lesson 05's `serveLines`, imported,
 * not copied. (The TLS listener is on a private loopback port, and the public
 * port relays each connection's bytes to it: see the main code for why.) Each connection is wrapped in a `TlsLineConn` (tls.ts), which
 * runs the handshake, logs the ALPN protocol the client chose, and turns a
 * failed handshake into one log line instead of a crash.
 *
 * `--starttls`: the port speaks plain text first, like SMTP and IMAP. The
 * client says STARTTLS, we say go ahead, and from the next byte on it is
 * TLS. Deno can only start TLS on the client side of an existing connection
 * (`Deno.startTls`), so the server hands the connection's bytes to its own
 * TLS listener on a private loopback port, the way a TLS terminator such as
 * stunnel does.
 */
import {
  closeQuietly,
  describeNetError,
  formatAddr,
  listen,
  parseFlags,
  peerLog,
  readWithTimeout,
  runMain,
  serveEach,
  UsageError,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import { serveLines, SERVER_FLAGS } from "../05-line-framing/server.ts";
import {
  ALPN,
  CERTS_DIR,
  GO_AHEAD,
  GREETING,
  NOT_YET,
  readCertFile,
  readLineByteByByte,
  STARTTLS,
  TlsLineConn,
} from "./tls.ts";

/** Which certificate to serve: the good one, or one that clients must refuse. */
const CERTIFICATES: Record<string, { cert: string; key: string }> = {
  server: { cert: "server.crt", key: "server.key" },
  expired: { cert: "expired.crt", key: "server.key" },
  "no-san": { cert: "no-san.crt", key: "server.key" },
  ca: { cert: "ca.crt", key: "ca.key" }, // the CA's own certificate, as if it were a server's
};

/** The longest STARTTLS command line we read, and the relay's buffer. */
const MAX_COMMAND_BYTES = 64;
const RELAY_BUFFER_BYTES = 16 * 1024;

/** Reads the certificate and key named `name` from `dir`, with a one-line error. */
function readCertificate(dir: string, name: string): { cert: string; key: string } {
  const files = CERTIFICATES[name];
  if (!files) {
    throw new UsageError(`--cert must be one of ${Object.keys(CERTIFICATES).join(", ")}`);
  }
  return {
    cert: readCertFile(`${dir}/${files.cert}`),
    key: readCertFile(`${dir}/${files.key}`, "key"),
  };
}

/**
 * Who is behind each hand-over connection (the relay from the public port
 * to the TLS listener), by its local port. The TLS listener may accept a
 * hand-over before `connect` has written it down (both happen at once), so
 * `take` waits for the connects still in flight, and only for those: a
 * connection no hand-over claims is not waited on.
 * (Exported for the tests.)
 */
export class HandOvers {
  #peers = new Map<number, Deno.NetAddr>();
  #connecting = 0;
  #landed: (() => void)[] = [];

  /** Opens a hand-over connection to the TLS listener for `peer`, and writes it down. */
  async connect(tlsAddr: Deno.NetAddr, peer: Deno.NetAddr): Promise<Deno.TcpConn> {
    this.#connecting++;
    try {
      const tls = await Deno.connect({ hostname: tlsAddr.hostname, port: tlsAddr.port });
      this.#peers.set(tls.localAddr.port, peer);
      return tls;
    } finally {
      this.#connecting--;
      for (const wake of this.#landed.splice(0)) wake();
    }
  }

  /** The client behind `port`, or undefined if no hand-over claims it. */
  async take(port: number): Promise<Deno.NetAddr | undefined> {
    // Wait while a connect is in flight (it may be this one), 1 s at most.
    const deadline = Date.now() + 1000;
    while (!this.#peers.has(port) && this.#connecting > 0 && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#landed.push(resolve);
        timer = setTimeout(resolve, deadline - Date.now());
      });
      clearTimeout(timer);
    }
    const peer = this.#peers.get(port);
    this.#peers.delete(port);
    return peer;
  }
}

/**
 * The TLS listener, as lesson 05's `serveLines` sees it: each connection it
 * accepts comes wrapped in a `TlsLineConn` that logs the handshake.
 * `handedOver` maps the port of each hand-over connection (relayed from
 * the public port) to the client it carries, so the log names the real client.
 */
class TlsLineListener implements Deno.Listener<TlsLineConn, Deno.NetAddr> {
  #inner: Deno.TlsListener;
  #handedOver?: HandOvers;

  constructor(inner: Deno.TlsListener, handedOver?: HandOvers) {
    this.#inner = inner;
    this.#handedOver = handedOver;
  }

  get addr(): Deno.NetAddr {
    return this.#inner.addr;
  }

  async accept(): Promise<TlsLineConn> {
    let conn: Deno.TlsConn;
    let remoteAddr: Deno.NetAddr;
    while (true) {
      conn = await this.#inner.accept(); // TCP only: the handshake comes with the first read
      remoteAddr = conn.remoteAddr;
      if (!this.#handedOver) break;
      const client = await this.#handedOver.take(conn.remoteAddr.port);
      if (client) {
        remoteAddr = client;
        break;
      }
      // No hand-over of ours: someone else found the private port. Not served.
      closeQuietly(conn);
    }
    const peer = formatAddr(remoteAddr);
    return new TlsLineConn(conn, {
      remoteAddr,
      onHandshake: (info) =>
        peerLog.event(
          `TLS with ${peer}: ` +
            (info.alpnProtocol ? `ALPN protocol "${info.alpnProtocol}"` : "no ALPN protocol"),
        ),
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterableIterator<TlsLineConn> {
    while (true) yield await this.accept();
  }

  close(): void {
    this.#inner.close();
  }

  ref(): void {
    this.#inner.ref();
  }

  unref(): void {
    this.#inner.unref();
  }

  [Symbol.dispose](): void {
    closeQuietly(this.#inner);
  }
}

/**
 * The server side of STARTTLS: greet in plain text, wait for STARTTLS, say
 * go ahead, then relay the bytes, unchanged, to our own TLS listener.
 */
async function startTls(
  conn: Deno.TcpConn,
  tlsAddr: Deno.NetAddr,
  handedOver: HandOvers,
  idleMs: number,
): Promise<void> {
  const peer = formatAddr(conn.remoteAddr);
  const say = (line: string) =>
    writeAllWithTimeout(conn, utf8Encode(line + "\n"), idleMs, "the client");
  let tls: Deno.TcpConn | undefined;
  try {
    await say(GREETING);
    const first = new Uint8Array(1);
    if (await readWithTimeout(conn, first, idleMs, "the client") === null) {
      peerLog.event(`closed plain-text connection from ${peer}: it left without a word`);
      return;
    }
    if (first[0] === 0x16) {
      // 0x16 starts a TLS handshake record: a client that began with TLS.
      peerLog.event(`closed plain-text connection from ${peer}: it began with a TLS handshake`);
      return;
    }
    const command = String.fromCharCode(first[0]) +
      (await readLineByteByByte(conn, MAX_COMMAND_BYTES, idleMs, "the client") ?? "");
    if (command !== STARTTLS) {
      await say(NOT_YET);
      peerLog.event(
        `closed plain-text connection from ${peer}: it said ${JSON.stringify(command)}`,
      );
      return;
    }
    await say(GO_AHEAD);
    peerLog.event(`STARTTLS from ${peer}: handing the connection to the TLS listener`);
    tls = await handedOver.connect(tlsAddr, conn.remoteAddr);
    await relayBoth(conn, tls, idleMs);
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    peerLog.event(`closed plain-text connection from ${peer}: ${reason}`);
  } finally {
    closeQuietly(conn);
    if (tls) closeQuietly(tls);
  }
}

/**
 * Without --starttls: no greeting, the client's bytes go straight to the TLS
 * listener (why there is a relay at all: see the main code below).
 */
async function passOn(
  conn: Deno.TcpConn,
  tlsAddr: Deno.NetAddr,
  handedOver: HandOvers,
  idleMs: number,
): Promise<void> {
  let tls: Deno.TcpConn | undefined;
  try {
    tls = await handedOver.connect(tlsAddr, conn.remoteAddr);
    await relayBoth(conn, tls, idleMs);
  } catch (error) {
    const reason = describeNetError(error);
    if (reason === undefined) throw error;
    peerLog.event(`closed connection from ${formatAddr(conn.remoteAddr)}: ${reason}`);
  } finally {
    closeQuietly(conn);
    if (tls) closeQuietly(tls);
  }
}

/** Relays both ways between the client and its hand-over connection, until both end. */
async function relayBoth(conn: Deno.TcpConn, tls: Deno.TcpConn, idleMs: number): Promise<void> {
  // Small TLS records must not wait for delayed ACKs on the way (see client.ts).
  conn.setNoDelay(true);
  tls.setNoDelay(true);
  await Promise.all([relay(conn, tls, idleMs), relay(tls, conn, idleMs)]);
}

/** Copies `from` to `to` until EOF, then half-closes `to`; one small buffer. */
async function relay(from: Deno.TcpConn, to: Deno.TcpConn, idleMs: number): Promise<void> {
  const buffer = new Uint8Array(RELAY_BUFFER_BYTES);
  try {
    while (true) {
      const n = await readWithTimeout(from, buffer, idleMs, "the peer");
      if (n === null) break;
      await writeAllWithTimeout(to, buffer.subarray(0, n), idleMs, "the peer");
    }
    await to.closeWrite();
  } catch {
    // One side broke: end both (the TLS side logs why).
    closeQuietly(from);
    closeQuietly(to);
  }
}

// Last, so that the class above exists when main runs.
if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 18,
      role: "server",
      summary: "Lesson 05's line service over TLS: answers each line with its number and the " +
        "text reversed. Make the certificates first: deno task lesson18-certs",
      flags: {
        certs: {
          type: "string",
          description: "the folder with the certificates",
          default: CERTS_DIR,
          value: "DIR",
        },
        cert: {
          type: "string",
          description: "which certificate to serve: server, expired, no-san or ca",
          default: "server",
          value: "NAME",
        },
        starttls: { type: "boolean", description: "plain text first; TLS after STARTTLS" },
        ...SERVER_FLAGS,
      },
    });
    const { cert, key } = readCertificate(flags.certs, flags.cert);
    const tlsOptions = { cert, key, alpnProtocols: [ALPN] };

    // The public port is plain TCP; TLS is on a private loopback port behind
    // it, and each connection is relayed there (after STARTTLS, or at once).
    // Why not Deno.listenTls on the public port? In Deno 2.9, closing a
    // TlsConn whose handshake has not begun leaves its TCP socket open
    // (denoland/deno#14547): a client that connects and says nothing would
    // outlive the idle timeout and its --max-connections slot. A plain TCP
    // socket does close, and the relay closes it when the client goes quiet.
    const plain = listen({ host: flags.host, port: flags.port, lesson: 18 });
    const inner = Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...tlsOptions });
    const handedOver = new HandOvers();
    const idleMs = flags["idle-timeout"] * 1000;
    const handle = flags.starttls ? startTls : passOn;
    await Promise.all([
      serveLines(new TlsLineListener(inner, handedOver), flags),
      serveEach(plain, (conn) => handle(conn, inner.addr, handedOver, idleMs), {
        maxConnections: flags["max-connections"],
        // Plain text is no use to a TLS client: over the limit, it is just closed.
        busyReply: flags.starttls ? undefined : new Uint8Array(0),
      }),
    ]);
  });
}
