// deno-lint-ignore-file no-unused-vars require-await -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 18: reading the plain-text STARTTLS line safely is yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 18`:
 * lesson 18's own tests check your file in the lesson's place.
 *
 * What lesson 18's server and client share: where the certificates are, the
 * ALPN name, one-line TLS errors, a TLS connection that lesson 05's code can
 * use as it is, and the STARTTLS lines.
 *
 * @module
 */
import { closeQuietly, LessonError, readWithTimeout, utf8Decode } from "../../lib/mod.ts";

/** Where `deno task lesson18-certs` puts the certificates (git-ignored). */
export const CERTS_DIR = "lessons/18-tls/certs";

/**
 * Reads one file that `deno task lesson18-certs` makes, with a one-line
 * error that says how to make it.
 *
 * @param path the file
 * @param what what it is, for the error: "certificate", "key", "CA certificate"
 */
export function readCertFile(path: string, what = "certificate"): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new LessonError(`no ${what} at ${path}: make it with: deno task lesson18-certs`);
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new LessonError(`not permitted to read ${path}: the task may only read ${CERTS_DIR}`);
    }
    throw error;
  }
}

/** The ALPN protocol name both sides offer: lesson 05's line protocol. */
export const ALPN = "lines";

/** STARTTLS: the server's greeting, the client's command and the go-ahead (as SMTP says it). */
export const GREETING = "220 lesson18 ready: say STARTTLS to switch to TLS";
export const STARTTLS = "STARTTLS";
export const GO_AHEAD = "220 go ahead";
export const NOT_YET = "530 say STARTTLS first";

/** What usually causes each rustls error, as the client and as the server see it. */
const HINTS: [RegExp, string][] = [
  [
    /UnknownIssuer/,
    "the certificate is signed by a CA this client does not trust: --ca names the CA",
  ],
  [/not valid for any names/, "it has no subjectAltName, and rustls never looks at the CN"],
  [/not valid for name/, "the name we asked for is not among the certificate's names"],
  [/certificate expired/, "the certificate's validity has ended: the server needs a new one"],
  [/CaUsedAsEndEntity/, "the server sent a CA certificate (CA:TRUE) as its own"],
  [
    /BadSignature/,
    "the CA this client trusts has the issuer's name but not its key: was the CA made again? " +
    "restart the server with a certificate from the new CA",
  ],
  [
    /alert: DecryptError/,
    "the client could not check our certificate's signature: it trusts another CA of the same " +
    "name (a new ca.crt?)",
  ],
  [/alert: UnknownCA/, "the client does not trust the CA that signed our certificate"],
  [/alert: BadCertificate/, "the client refused our certificate: a name it does not hold?"],
  [/alert: CertificateExpired/, "the client says our certificate has expired"],
  [/alert: CertificateUnknown/, "the client refused our certificate"],
  [/corrupt message|InvalidContentType/, "the other side does not speak TLS here: plain text?"],
];

/**
 * A one-line error for a failed TLS handshake or TLS read: rustls's own
 * words (they are exact), and a hint at what usually causes them. Other
 * errors (a reset, a timeout) are returned unchanged: lib explains those.
 *
 * @param handshake e.g. "TLS handshake with 127.0.0.1:65418"
 */
export function tlsError(error: unknown, handshake = "TLS handshake"): unknown {
  if (!(error instanceof Deno.errors.InvalidData)) return error;
  const said = error.message.replace(/ \(os error \d+\)$/, "")
    // rustls counts in seconds since 1970: say the date instead.
    .replace(
      /expired: verification time .* not valid after (\d+) .*$/,
      (_, end) => `expired on ${new Date(Number(end) * 1000).toISOString().slice(0, 10)}`,
    );
  const hint = HINTS.find(([pattern]) => pattern.test(said))?.[1];
  return new LessonError(`${handshake} failed: ${said}${hint ? ` (${hint})` : ""}`);
}

/**
 * A `Deno.TlsConn` that lesson 05's code can use unchanged: the handshake
 * runs before the first read or write (and `onHandshake` hears how it went),
 * and TLS failures become one-line {@linkcode LessonError}s instead of
 * `InvalidData`, which lesson 05 would treat as a bug. `remoteAddr` can be
 * given: the STARTTLS server hands connections over and knows the real peer.
 */
export class TlsLineConn implements Deno.Conn {
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  #conn: Deno.TlsConn;
  #handshake?: Promise<Deno.TlsHandshakeInfo>;
  #onHandshake?: (info: Deno.TlsHandshakeInfo) => void;
  #what: string;

  constructor(
    conn: Deno.TlsConn,
    options: {
      remoteAddr?: Deno.NetAddr;
      onHandshake?: (info: Deno.TlsHandshakeInfo) => void;
      /** How errors name the handshake, e.g. "TLS handshake with 127.0.0.1:65418". */
      handshake?: string;
    },
  ) {
    this.#conn = conn;
    this.localAddr = conn.localAddr;
    this.remoteAddr = options.remoteAddr ?? conn.remoteAddr;
    this.#onHandshake = options.onHandshake;
    this.#what = options.handshake ?? "TLS handshake";
  }

  /** The underlying connection (to ask it for its certificate). */
  get tls(): Deno.TlsConn {
    return this.#conn;
  }

  /** Runs the handshake once; later calls get the same answer. */
  handshake(): Promise<Deno.TlsHandshakeInfo> {
    this.#handshake ??= this.#conn.handshake().then((info) => {
      this.#onHandshake?.(info);
      return info;
    }, (error) => {
      throw tlsError(error, this.#what);
    });
    return this.#handshake;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    await this.handshake();
    try {
      return await this.#conn.read(buffer);
    } catch (error) {
      throw tlsError(error, "TLS");
    }
  }

  async write(data: Uint8Array): Promise<number> {
    await this.handshake();
    try {
      return await this.#conn.write(data);
    } catch (error) {
      throw tlsError(error, "TLS");
    }
  }

  /** Sends TLS's close_notify, then the TCP FIN: "I have nothing more to send". */
  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  close(): void {
    this.#conn.close();
  }

  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    return this.#conn.readable;
  }

  get writable(): WritableStream<Uint8Array<ArrayBufferLike>> {
    return this.#conn.writable;
  }

  ref(): void {
    this.#conn.ref();
  }

  unref(): void {
    this.#conn.unref();
  }

  [Symbol.dispose](): void {
    closeQuietly(this.#conn);
  }
}

/**
 * Reads one line of at most `maxBytes`, ONE BYTE AT A TIME. Before STARTTLS
 * that matters: whatever we read past the line would be plain text that an
 * attacker could slip in before the handshake and that we might later mix
 * up with the protected data (the STARTTLS injection bug, CVE-2011-0411).
 * Reading no further than the LF leaves such bytes to the TLS layer, which
 * rejects them.
 */
export async function readLineByteByByte(
  conn: Deno.Conn,
  maxBytes: number,
  timeoutMs: number,
  what: string,
): Promise<string | null> {
  // TODO(exercise): read one line, at most maxBytes long, ONE BYTE AT A TIME with
  // readWithTimeout(conn, ..., timeoutMs, what): whatever you read past the LF
  // would be plain text that TLS must see instead. Return the line without its
  // LF, and without a CR before it (utf8Decode(bytes, what)); at EOF, null if
  // nothing came, else what came. Past maxBytes, stop waiting for an LF and throw
  // new LessonError(`${what} sent a line longer than ${maxBytes} bytes`).
  return null;
}
