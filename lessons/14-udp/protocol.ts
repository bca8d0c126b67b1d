/**
 * Lesson 14's protocol: what one request datagram means, and its answer.
 *
 * Kept apart from the socket code so that the rules can be read (and tested)
 * on their own. A request is one datagram of UTF-8 text, at most
 * {@linkcode MAX_DATAGRAM_BYTES} bytes; its answer is one datagram too:
 *
 * - `ping SEQ TIMESTAMP` is answered `pong SEQ TIMESTAMP`, the same numbers
 *   back, so the client can match the answer to its ping and time it;
 * - otherwise, the key-value rules of the "Unusual Database Program": with an
 *   `=`, it is an insert, split at the first `=` (`a=b=c` stores `b=c` under
 *   `a`; `=x` stores `x` under the empty key), answered with what the key now
 *   holds; without `=`, it retrieves, answered `key=value` (`key=` when the
 *   key is unknown). `version` is read-only.
 */

/** The longest request or answer, in bytes. */
export const MAX_DATAGRAM_BYTES = 1000;

/** The value of the read-only key `version`. */
export const VERSION = "Deno Socket Lessons 14";

/** `ping SEQ TIMESTAMP`: a sequence number and the client's clock in ms. */
const PING = /^ping (\d{1,15}) (\d{1,15}(?:\.\d{1,6})?)$/;

/** What a request was, for the server's log. */
export type Request =
  | { kind: "ping"; seq: number }
  | { kind: "insert"; key: string; stored: boolean }
  | { kind: "retrieve"; key: string };

/** The answer to a request: what it was, and the text to send back. */
export interface Answer {
  request: Request;
  reply: string;
}

/**
 * The key-value store, with a bound on how many keys it holds (each entry is
 * at most 1,000 bytes, so `maxKeys` bounds its memory too). When it is full,
 * inserting a new key stores nothing, and the answer says so by showing
 * what the key still holds: `key=`.
 */
export class Store {
  #entries = new Map<string, string>();
  #maxKeys: number;

  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys;
  }

  /** How many keys are stored. */
  get size(): number {
    return this.#entries.size;
  }

  /** Answers one request (the datagram's text, already checked for size). */
  answer(text: string): Answer {
    const ping = text.match(PING);
    if (ping) {
      return {
        request: { kind: "ping", seq: Number(ping[1]) },
        reply: `pong ${ping[1]} ${ping[2]}`,
      };
    }
    const equals = text.indexOf("=");
    if (equals === -1) return { request: { kind: "retrieve", key: text }, reply: this.#show(text) };
    const key = text.slice(0, equals);
    const value = text.slice(equals + 1);
    const stored = key !== "version" &&
      (this.#entries.has(key) || this.#entries.size < this.#maxKeys);
    if (stored) this.#entries.set(key, value);
    return { request: { kind: "insert", key, stored }, reply: this.#show(key) };
  }

  /** `key=value`: what the key holds now. */
  #show(key: string): string {
    if (key === "version") return `version=${VERSION}`;
    return `${key}=${this.#entries.get(key) ?? ""}`;
  }
}

/**
 * A small seeded random number generator (mulberry32). `--loss` and
 * `--delay` draw from it, so with `--seed` the same requests lose the same
 * replies on every run, which makes an experiment repeatable. Without a seed
 * the server uses `Math.random`.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
