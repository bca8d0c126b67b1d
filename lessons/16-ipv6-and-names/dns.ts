/**
 * A tiny DNS server: just enough of RFC 1035 to answer A (IPv4) and AAAA
 * (IPv6) questions about a few names, over UDP on loopback.
 *
 * A DNS query is one UDP datagram and so is the answer: a 12-byte header,
 * the question (the name as length-prefixed labels, then the type and
 * class), and in the answer one record per address. No connection, no
 * framing: the datagram is the message. This server never trusts a datagram:
 * it reads at most 512 bytes, checks every length before it uses it, and
 * ignores anything that is not one well-formed question.
 */
import { formatAddr, UsageError } from "../../lib/mod.ts";

/** Record types we answer. */
export const TYPE_A = 1;
/** The IPv6 address record type. */
export const TYPE_AAAA = 28;
const CLASS_IN = 1;
/** The classic DNS-over-UDP size limit; our answers are far smaller. */
export const MAX_DATAGRAM_BYTES = 512;
/** At most this many addresses per name, so an answer always fits in 512 bytes. */
export const MAX_ADDRESSES_PER_NAME = 8;
const TTL_SECONDS = 60;

const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;

/** Names and their addresses (names in lower case, without a final dot). */
export type Zone = Map<string, string[]>;

/** The names the lesson server answers unless told otherwise (`.test` is reserved for tests). */
export function lessonZone(): Zone {
  return new Map([
    ["both.lesson16.test", ["::1", "127.0.0.1"]],
    ["v4.lesson16.test", ["127.0.0.1"]],
    ["v6.lesson16.test", ["::1"]],
  ]);
}

/** A datagram that is not one well-formed DNS question. */
export class DnsFormatError extends Error {}

/** One question, as parsed from a query. */
export interface Query {
  id: number;
  flags: number;
  /** The name, in lower case (DNS names are case-insensitive). */
  name: string;
  type: number;
  class: number;
  /** The question section's bytes, sent back as they came. */
  question: Uint8Array;
}

/** `A`, `AAAA`, or `type 15` for types we do not name. */
export function typeName(type: number): string {
  return type === TYPE_A ? "A" : type === TYPE_AAAA ? "AAAA" : `type ${type}`;
}

/** The 4 or 16 bytes of an IPv4 (`127.0.0.1`) or IPv6 (`::1`) address; throws if it is not one. */
export function addressBytes(address: string): Uint8Array {
  if (!address.includes(":")) {
    const parts = address.split(".");
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
      throw new Error(`${JSON.stringify(address)} is not an IP address`);
    }
    return Uint8Array.from(parts.map(Number));
  }
  // An IPv4 tail (`::ffff:127.0.0.1`) is the last two 16-bit groups.
  let text = address;
  const tail = address.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (tail) {
    const [a, b, c, d] = addressBytes(tail[2]);
    text = `${tail[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  // Eight groups of up to 4 hex digits; one `::` stands for the zero groups left out.
  const halves = text.split("::");
  const groups = (s: string | undefined) => (s ? s.split(":") : []);
  const head = groups(halves[0]);
  const rest = groups(halves[1]);
  const missing = 8 - head.length - rest.length;
  const all = [...head, ...Array(Math.max(missing, 0)).fill("0"), ...rest];
  if (
    halves.length > 2 || (halves.length === 1 ? missing !== 0 : missing < 1) ||
    !all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))
  ) {
    throw new Error(`${JSON.stringify(address)} is not an IP address`);
  }
  return Uint8Array.from(all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

/** A label's bytes as text; bytes that are not printable ASCII become `\DDD`, as `dig` shows them. */
function labelText(bytes: Uint8Array): string {
  return Array.from(
    bytes,
    (b) =>
      b > 0x20 && b < 0x7f && b !== 0x2e && b !== 0x5c
        ? String.fromCharCode(b)
        : `\\${String(b).padStart(3, "0")}`,
  ).join("");
}

/** Parses a query datagram; throws {@linkcode DnsFormatError} if it is not one question. */
export function parseQuery(datagram: Uint8Array): Query {
  if (datagram.length < 12) {
    throw new DnsFormatError(`${datagram.length} bytes is too short for a DNS header (12)`);
  }
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const id = view.getUint16(0);
  const flags = view.getUint16(2);
  if (flags & 0x8000) throw new DnsFormatError("it is an answer, not a question");
  const questions = view.getUint16(4);
  if (questions !== 1) throw new DnsFormatError(`it has ${questions} questions, not 1`);
  // The name: labels, each a length byte then that many bytes, ending with 0.
  const labels: string[] = [];
  let offset = 12;
  let nameBytes = 0;
  for (;;) {
    if (offset >= datagram.length) throw new DnsFormatError("the name runs past the end");
    const size = datagram[offset++];
    if (size === 0) break;
    // 64 and up would be a compression pointer: answers use them, questions need not.
    if (size > 63) throw new DnsFormatError("a label longer than 63 bytes");
    if (offset + size > datagram.length) throw new DnsFormatError("the name runs past the end");
    nameBytes += size + 1;
    if (nameBytes > 255) throw new DnsFormatError("a name longer than 255 bytes");
    labels.push(labelText(datagram.subarray(offset, offset + size)));
    offset += size;
  }
  if (offset + 4 > datagram.length) throw new DnsFormatError("no type and class after the name");
  return {
    id,
    flags,
    name: labels.join(".").toLowerCase(),
    type: view.getUint16(offset),
    class: view.getUint16(offset + 2),
    question: datagram.slice(12, offset + 4),
  };
}

/** Builds the answer datagram to `query`: header, its question, one record per address. */
export function buildResponse(query: Query, rcode: number, addresses: string[]): Uint8Array {
  const records = addresses.map(addressBytes);
  const size = 12 + query.question.length + records.reduce((sum, r) => sum + 12 + r.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint16(0, query.id); // the client matches the answer to its question by this ID
  // QR (an answer) + AA (we are the authority) + RD copied from the question + the result code.
  view.setUint16(2, 0x8000 | 0x0400 | (query.flags & 0x0100) | rcode);
  view.setUint16(4, 1);
  view.setUint16(6, records.length);
  out.set(query.question, 12);
  let offset = 12 + query.question.length;
  for (const rdata of records) {
    view.setUint16(offset, 0xc00c); // the name: a pointer to the one in the question (offset 12)
    view.setUint16(offset + 2, rdata.length === 4 ? TYPE_A : TYPE_AAAA);
    view.setUint16(offset + 4, CLASS_IN);
    view.setUint32(offset + 6, TTL_SECONDS);
    view.setUint16(offset + 10, rdata.length);
    out.set(rdata, offset + 12);
    offset += 12 + rdata.length;
  }
  return out;
}

/**
 * Answers one datagram from `zone`. Returns the answer to send (none for a
 * datagram that is not a question) and a line that says what happened.
 */
export function answerQuery(zone: Zone, datagram: Uint8Array): {
  response?: Uint8Array;
  summary: string;
} {
  let query: Query;
  try {
    query = parseQuery(datagram);
  } catch (error) {
    if (!(error instanceof DnsFormatError)) throw error;
    return { summary: `ignored ${datagram.length} bytes: ${error.message}` };
  }
  const asked = `${typeName(query.type)} ${query.name}`;
  const opcode = (query.flags >> 11) & 0xf;
  let rcode = 0;
  let addresses: string[] = [];
  let said: string;
  if (opcode !== 0 || query.class !== CLASS_IN) {
    rcode = RCODE_NOTIMP;
    said = "not implemented (only standard queries, class IN)";
  } else if (!zone.has(query.name)) {
    rcode = RCODE_NXDOMAIN;
    said = "no such name";
  } else {
    const family = query.type === TYPE_A ? 4 : query.type === TYPE_AAAA ? 16 : 0;
    addresses = zone.get(query.name)!.filter((a) => addressBytes(a).length === family);
    // The name exists but has no record of this type: NOERROR with no answers.
    said = addresses.length > 0 ? addresses.join(", ") : `no ${typeName(query.type)} record`;
  }
  const response = buildResponse(query, rcode, addresses);
  return {
    response,
    summary:
      `asked ${asked} (${datagram.length} bytes), answered ${said} (${response.length} bytes)`,
  };
}

/**
 * Parses `--record NAME=ADDRESS` flags into a zone (added to `zone`), with
 * one-line errors for a bad name or address.
 */
export function addRecords(zone: Zone, records: string[]): Zone {
  for (const record of records) {
    const [name, address] = record.split("=", 2).map((s) => s.trim());
    const labels = (name ?? "").toLowerCase().replace(/\.$/, "").split(".");
    if (!labels.every((l) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l))) {
      throw new UsageError(
        `--record wants NAME=ADDRESS, e.g. mine.test=::1, got ${JSON.stringify(record)}`,
      );
    }
    try {
      addressBytes(address ?? "");
    } catch {
      throw new UsageError(
        `--record ${record}: ${JSON.stringify(address ?? "")} is not an IP address`,
      );
    }
    const key = labels.join(".");
    const list = zone.get(key) ?? [];
    if (list.length >= MAX_ADDRESSES_PER_NAME) {
      throw new UsageError(
        `--record: at most ${MAX_ADDRESSES_PER_NAME} addresses per name (${key})`,
      );
    }
    zone.set(key, [...list, address]);
  }
  return zone;
}

/**
 * Answers DNS queries on `socket` until it is closed. `log` gets one line
 * per datagram (pass a throttled log: a flood of queries must not become a
 * flood of lines).
 */
export async function serveDns(
  socket: Deno.DatagramConn,
  zone: Zone,
  log: (line: string) => void,
): Promise<void> {
  const buffer = new Uint8Array(MAX_DATAGRAM_BYTES);
  for (;;) {
    let datagram: Uint8Array;
    let from: Deno.Addr;
    try {
      [datagram, from] = await socket.receive(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
        return; // the socket was closed: we are shutting down
      }
      log(`dns: receive failed: ${error instanceof Error ? error.message : error}`);
      await new Promise((resolve) => setTimeout(resolve, 10)); // never a busy loop
      continue;
    }
    const { response, summary } = answerQuery(zone, datagram);
    log(`dns: ${formatAddr(from)} ${summary}`);
    if (response) {
      // UDP has no connection to break: a failed send (the asker is gone) is only noted.
      await socket.send(response, from).catch((error) =>
        log(`dns: could not answer: ${error instanceof Error ? error.message : error}`)
      );
    }
  }
}
