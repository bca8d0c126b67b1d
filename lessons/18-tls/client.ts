/**
 * Lesson 18 client: lesson 05's client over TLS.
 *
 * It connects over TCP, then starts TLS on that connection with
 * `Deno.startTls`, trusting the lesson's CA (`caCerts`) and checking the
 * name `--name` (default: the `--host` we connect to). That is exactly what
 * `Deno.connectTls({ hostname, port, caCerts })` does in one call; two steps
 * let `--starttls` talk plain text in between, and `--name` ask for another
 * name than the address we dial. Once the handshake has verified the
 * server, it prints what was verified, and lesson 05's `talk` does the rest.
 */
import {
  closeQuietly,
  connect,
  LessonError,
  parseFlags,
  runMain,
  terminalSafe,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";
import { CLIENT_FLAGS, talk } from "../05-line-framing/client.ts";
import {
  ALPN,
  CERTS_DIR,
  GO_AHEAD,
  GREETING,
  readCertFile,
  readLineByteByByte,
  STARTTLS,
  tlsError,
  TlsLineConn,
} from "./tls.ts";

/** The longest plain-text line we accept from a STARTTLS server. */
const MAX_PLAIN_LINE_BYTES = 512;
const DAY_MS = 24 * 60 * 60 * 1000;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 18,
    role: "client",
    summary: "Sends lines to the lesson 18 server over TLS and prints what TLS verified, then " +
      "each answer line. Lines come from --message (repeatable) or standard input.",
    flags: {
      ca: {
        type: "string",
        description: "the CA certificate to trust",
        default: `${CERTS_DIR}/ca.crt`,
        value: "FILE",
      },
      "no-ca": {
        type: "boolean",
        description: "trust only Deno's built-in public CAs, not the lesson's",
      },
      name: { type: "string", description: "the name to check (default: --host)", value: "NAME" },
      starttls: { type: "boolean", description: "plain text first, then STARTTLS" },
      ...CLIENT_FLAGS,
    },
  });
  const caCerts = flags["no-ca"] ? [] : [readCertFile(flags.ca, "CA certificate")];
  const name = flags.name ?? flags.host;
  const timeoutMs = flags.timeout * 1000;

  await talk(flags, async () => {
    const tcp = await connect({ host: flags.host, port: flags.port, lesson: 18, timeoutMs });
    // Deno's TCP connections start with Nagle's algorithm on. The handshake's
    // last small write, then our first line, would wait for a delayed ACK:
    // about 40 ms per connection (bench.ts). Deno.connectTls cannot turn it off.
    tcp.setNoDelay(true);
    let current: { close(): void } = tcp; // what the deadline closes
    const address = `${flags.host}:${flags.port}`;
    const handshake = `TLS handshake with ${
      name === flags.host ? address : `${name} at ${address}`
    }`;
    try {
      return await withDeadline(
        { close: () => closeQuietly(current) },
        timeoutMs,
        "TLS",
        async () => {
          if (flags.starttls) await askForTls(tcp, timeoutMs);
          let tls: Deno.TlsConn;
          try {
            tls = await Deno.startTls(tcp, { hostname: name, caCerts, alpnProtocols: [ALPN] });
          } catch (error) {
            throw tlsError(error, handshake);
          }
          current = tls;
          const conn = new TlsLineConn(tls, { handshake });
          const info = await conn.handshake();
          report(tls, name, flags["no-ca"] ? "Deno's built-in CAs" : flags.ca, info);
          return conn;
        },
      );
    } catch (error) {
      closeQuietly(current);
      throw error;
    }
  });
});

/** The client side of STARTTLS: wait for the greeting, ask, wait for the go-ahead. */
async function askForTls(conn: Deno.TcpConn, timeoutMs: number): Promise<void> {
  const read = () => readLineByteByByte(conn, MAX_PLAIN_LINE_BYTES, timeoutMs, "the server");
  const greeting = await read();
  console.log(`plain < ${terminalSafe(String(greeting))}`);
  if (greeting !== GREETING) {
    throw new LessonError("the server did not offer STARTTLS: is this a STARTTLS port?");
  }
  console.log(`plain > ${STARTTLS}`);
  await writeAll(conn, utf8Encode(STARTTLS + "\n"));
  const answer = await read();
  console.log(`plain < ${terminalSafe(String(answer))}`);
  // Never go on in plain text when TLS was refused: that is how a
  // man-in-the-middle "strips" STARTTLS and reads everything.
  if (answer !== GO_AHEAD) throw new LessonError(`the server refused STARTTLS: ${answer}`);
}

/** The certificate the handshake verified, as node:tls describes it. */
interface PeerCertificate {
  subject: Record<string, string>;
  issuer: Record<string, string>;
  subjectaltname?: string;
  valid_from: string;
  valid_to: string;
}

/**
 * The certificate the server sent. Deno 2.9 keeps it on the TlsConn (its
 * node:tls uses it for `getPeerCertificate`) but gives it no public name,
 * so we look for the method by its description; if a later Deno moves it,
 * we say so instead of failing.
 */
function peerCertificate(conn: Deno.TlsConn): PeerCertificate | undefined {
  const symbol = Object.getOwnPropertySymbols(Object.getPrototypeOf(conn))
    .find((s) => s.description === "getPeerCertificate");
  if (!symbol) return undefined;
  const method = (conn as unknown as Record<symbol, (detailed: boolean) => unknown>)[symbol];
  return (method.call(conn, false) ?? undefined) as PeerCertificate | undefined;
}

/** Prints what the handshake verified. */
function report(conn: Deno.TlsConn, name: string, ca: string, info: Deno.TlsHandshakeInfo) {
  const dn = (parts: Record<string, string>) =>
    Object.entries(parts).map(([k, v]) => `${k}=${v}`).join(", ");
  console.log(`TLS: verified the server's certificate for "${name}"`);
  const cert = peerCertificate(conn);
  if (cert) {
    const names = (cert.subjectaltname ?? "").replace(/(DNS|IP Address):/g, "") || "(none)";
    const days = Math.round((Date.parse(cert.valid_to) - Date.now()) / DAY_MS);
    console.log(`  subject: ${dn(cert.subject)}`);
    console.log(`  issuer:  ${dn(cert.issuer)} (trusted: ${ca})`);
    console.log(`  names:   ${names}`);
    console.log(`  valid:   now, and for ${days} more days`);
  } else {
    console.log(`  issuer:  trusted: ${ca} (this Deno does not show the certificate itself)`);
  }
  console.log(`  ALPN:    ${info.alpnProtocol ?? "(none)"}`);
}
