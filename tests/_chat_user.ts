/** A scripted user of lesson 12's chat on a raw socket, for the lesson 12 tests. */
import { assertEquals } from "@std/assert";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { LineDecoder } from "../lib/lines.ts";
import { closeRaw, encode, rawConnect } from "./_helpers.ts";

/** A scripted chat user on a raw socket, reading the server's lines one by one. */
export class User {
  conn: Deno.TcpConn;
  #decoder = new LineDecoder(1 << 20);
  #lines: string[] = [];
  #buffer = new Uint8Array(64 * 1024);
  bytesRead = 0;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async connect(port: number, name?: string): Promise<User> {
    const user = new User(await rawConnect(port));
    if (name !== undefined) {
      await user.send(`/name ${name}`);
      assertEquals(await user.next(), `ok name ${name}`);
    }
    return user;
  }

  send(line: string | Uint8Array): Promise<void> {
    return writeAll(this.conn, typeof line === "string" ? encode(line + "\n") : line);
  }

  /** The next line, or null at EOF (time-limited). */
  async next(timeoutMs = 10_000): Promise<string | null> {
    while (this.#lines.length === 0) {
      const n = await readWithTimeout(this.conn, this.#buffer, timeoutMs, "the server");
      if (n === null) return null;
      this.bytesRead += n;
      this.#lines.push(...this.#decoder.push(this.#buffer.subarray(0, n)));
    }
    return this.#lines.shift()!;
  }

  /** Sends `line` and returns the next line. */
  async ask(line: string | Uint8Array): Promise<string | null> {
    await this.send(line);
    return await this.next();
  }

  /** Skips lines until one matching `pattern` (returns it). */
  async until(pattern: RegExp): Promise<string> {
    while (true) {
      const line = await this.next();
      if (line === null) throw new Error(`EOF before ${pattern}`);
      if (pattern.test(line)) return line;
    }
  }

  close(): void {
    closeRaw(this.conn);
  }
}
