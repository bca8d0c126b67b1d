/**
 * Lesson 14: an anti-amplification budget per source address.
 *
 * A reply can be much bigger than its request: after `=` plus 999 bytes is
 * stored, an empty datagram (28 bytes on the wire: 20 of IPv4 header, 8 of
 * UDP header) fetches 1,000 bytes (1,028 on the wire), 37 times as much.
 * UDP has no handshake, so a source address can be forged: an attacker sends
 * small requests "from" a victim, and we would flood the victim with our big
 * replies (the memcached and DNS amplification attacks).
 *
 * The cure is QUIC's rule (RFC 9000, section 8): to an address not shown to
 * be real, send at most 3 times the bytes it sent. This protocol has no way
 * to show an address is real, so the rule always holds: each address earns
 * `factor` times the bytes it sends us, plus a small allowance each second
 * (so that a short request for a big value still gets its answer), and a
 * reply that would cost more than the address has earned is not sent.
 *
 * Addresses are counted by IP alone, without the port: the attacker picks
 * the forged port too, and one budget per port would give a victim 65,535.
 * The table is bounded: an address idle for {@linkcode IDLE_MS} is
 * forgotten (it would have its allowance back by then anyway), and when
 * {@linkcode MAX_ADDRESSES} are known the longest-idle one is forgotten.
 */

/** The allowance each address gets per second, and at most saves up, in bytes. */
export const ALLOWANCE_BYTES = 16 * 1024;
/** How many addresses the table holds at most. */
export const MAX_ADDRESSES = 10_000;
/** How long an idle address is remembered, in ms. */
export const IDLE_MS = 10_000;

/** The bytes a UDP datagram of `payload` bytes takes on the wire (IP and UDP headers). */
export function wireBytes(payload: number, ipv6: boolean): number {
  return payload + (ipv6 ? 40 : 20) + 8;
}

interface Budget {
  /** Bytes this address may still be sent. */
  credit: number;
  /** When credit was last brought up to date (ms). */
  last: number;
}

/** The amplification budget of every address that sent us something lately. */
export class AmplificationLimit {
  #factor: number;
  #now: () => number;
  /** By IP; Map order is least recently used first. */
  #budgets = new Map<string, Budget>();

  /** `factor` 0 turns the limit off. `now` is a clock in ms (for tests). */
  constructor(factor: number, now: () => number = () => performance.now()) {
    this.#factor = factor;
    this.#now = now;
  }

  /** How many addresses are remembered now. */
  get size(): number {
    return this.#budgets.size;
  }

  /** `host` sent us a datagram of `bytes` on the wire: it earns `factor` times that. */
  received(host: string, bytes: number): void {
    if (this.#factor === 0) return;
    this.#budget(host).credit += this.#factor * bytes;
  }

  /**
   * May we send `bytes` (on the wire) to `host`? If so, they are taken from
   * its budget; if not, nothing is taken and the reply should be dropped.
   */
  maySend(host: string, bytes: number): boolean {
    if (this.#factor === 0) return true;
    const budget = this.#budget(host);
    if (budget.credit < bytes) return false;
    budget.credit -= bytes;
    return true;
  }

  /** The budget of `host`, brought up to date (a new one has a full allowance). */
  #budget(host: string): Budget {
    const now = this.#now();
    let budget = this.#budgets.get(host);
    if (budget) {
      this.#budgets.delete(host); // re-inserted below: now the most recently used
      // The allowance refills at ALLOWANCE_BYTES a second, up to ALLOWANCE_BYTES saved.
      if (budget.credit < ALLOWANCE_BYTES) {
        const refill = (now - budget.last) / 1000 * ALLOWANCE_BYTES;
        budget.credit = Math.min(ALLOWANCE_BYTES, budget.credit + refill);
      }
      budget.last = now;
    } else {
      this.#forgetIdle(now);
      budget = { credit: ALLOWANCE_BYTES, last: now };
    }
    this.#budgets.set(host, budget);
    return budget;
  }

  /** Forgets addresses idle for IDLE_MS, and the longest-idle ones beyond MAX_ADDRESSES - 1. */
  #forgetIdle(now: number): void {
    for (const [host, budget] of this.#budgets) {
      if (this.#budgets.size < MAX_ADDRESSES && now - budget.last < IDLE_MS) break;
      this.#budgets.delete(host);
    }
  }
}
