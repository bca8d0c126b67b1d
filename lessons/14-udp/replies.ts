/**
 * The client's side of a datagram socket: replies from one server, with a
 * time limit on each wait.
 *
 * `DatagramConn.receive()` has no timeout and cannot be cancelled (only
 * closing the socket ends it), and on UDP a reply may never come. So one
 * loop receives for the whole life of the socket and puts each reply in a
 * queue; `next(deadline)` takes the next one, or gives `undefined` when the
 * deadline passes first. The loop also does two checks every UDP program
 * needs:
 *
 * - **who sent it.** Anyone can send a datagram to our port; only those from
 *   the server's address are replies.
 * - **how big it is.** We receive into a buffer one byte longer than the
 *   limit; a datagram that fills it was too long (the kernel cut it) and is
 *   dropped.
 */
import { formatAddr, utf8Decode } from "../../lib/mod.ts";

/** The most replies kept waiting to be read; more are counted and dropped. */
const MAX_QUEUED = 1000;

export class Replies {
  /** Datagrams ignored: from someone else, too long, or not text. */
  ignored = 0;
  /**
   * Replies from the server dropped because `MAX_QUEUED` were already waiting
   * (we read too slowly): the server did answer, but we threw the answer away.
   */
  dropped = 0;
  #queue: string[] = [];
  #wake: (() => void) | undefined;
  #done: Promise<void>;

  constructor(socket: Deno.DatagramConn, server: Deno.NetAddr, maxBytes: number) {
    const expected = formatAddr(server);
    const buffer = new Uint8Array(maxBytes + 1);
    this.#done = (async () => {
      while (true) {
        let data: Uint8Array, from: Deno.Addr;
        try {
          [data, from] = await socket.receive(buffer);
        } catch (error) {
          // Closing the socket ends the loop; any other error ends it too,
          // and the waits then run into their deadlines.
          if (
            !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted)
          ) {
            console.error(`receive failed: ${error instanceof Error ? error.message : error}`);
          }
          return;
        }
        let text: string | undefined;
        try {
          text = utf8Decode(data);
        } catch {
          text = undefined;
        }
        if (formatAddr(from) !== expected || data.length > maxBytes || text === undefined) {
          this.ignored++;
          continue;
        }
        if (this.#queue.length >= MAX_QUEUED) {
          this.dropped++;
          continue;
        }
        this.#queue.push(text);
        this.#wake?.();
      }
    })();
  }

  /** The next reply, or `undefined` if none came before `deadline` (a `performance.now()` time). */
  async next(deadline: number): Promise<string | undefined> {
    while (this.#queue.length === 0) {
      const wait = deadline - performance.now();
      if (wait <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, wait);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
    return this.#queue.shift();
  }

  /** Waits for the receive loop to end (after the socket is closed). */
  finished(): Promise<void> {
    return this.#done;
  }
}
