/**
 * Lesson 16 client: connect by name or by address, and say what happened.
 *
 * `--host` is an address (`127.0.0.1`, `::1`) or a name. A name is looked up
 * first, and the client prints every address it got: with the system
 * resolver (`/etc/hosts`, then DNS: the same one `curl` and your browser
 * use), or with `--dns`, by asking the lesson server's own DNS server over
 * UDP. Then it connects with Happy Eyeballs (eyeballs.ts), or with `--first`
 * the way many programs do it: the first address only. It sends each
 * `--message` as a line and prints the server's answers.
 */
import { lookup } from "node:dns/promises";
import {
  connect,
  formatAddr,
  LessonError,
  parseFlags,
  readLines,
  runMain,
  terminalSafe,
  timeoutFlag,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";
import { happyEyeballs, interleave } from "./eyeballs.ts";
import { describeEndpoint, isAddress } from "./family.ts";

const LESSON = 16;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: LESSON,
    role: "client",
    summary: "Connects to the lesson 16 server by address or by name, prints what the name " +
      "resolved to and which address answered, sends lines and prints the answers.",
    flags: {
      dns: {
        type: "boolean",
        description: "look the name up with the lesson's DNS server (udp 127.0.0.1, same port)",
      },
      first: {
        type: "boolean",
        description: "connect to the first address only (no Happy Eyeballs)",
      },
      "attempt-delay": {
        type: "number",
        description: "Happy Eyeballs: start the next address after this long",
        default: 250,
        min: 10,
        max: 10_000,
        value: "MS",
      },
      message: { type: "list", description: 'a line to send (default "hello")', value: "TEXT" },
      timeout: timeoutFlag(10),
    },
    epilog: "Names the lesson DNS server knows: both.lesson16.test (::1 and 127.0.0.1),\n" +
      "v4.lesson16.test (127.0.0.1), v6.lesson16.test (::1).\n" +
      "Example: deno task lesson16-client --dns --host both.lesson16.test",
  });
  const timeoutMs = flags.timeout * 1000;
  const messages = flags.message.length > 0 ? flags.message : ["hello"];

  let conn: Deno.TcpConn;
  if (isAddress(flags.host)) {
    // An address needs no lookup: connect, with the course's one-line errors.
    conn = await connect({ host: flags.host, port: flags.port, lesson: LESSON, timeoutMs });
  } else {
    const addresses = await resolve(flags.host, flags.dns, flags.port, timeoutMs);
    const how = flags.dns ? `lesson DNS server, udp 127.0.0.1:${flags.port}` : "system resolver";
    console.log(`${flags.host} resolved to ${addresses.join(", ")} (${how})`);
    if (flags.first) {
      // What a program does when it takes the first address and hopes.
      const first = addresses[0];
      console.log(`trying ${describeEndpoint(first, flags.port)}, the first address only`);
      conn = await connect({ host: first, port: flags.port, lesson: LESSON, timeoutMs });
    } else {
      conn = await happyEyeballs(interleave(addresses), flags.port, {
        attemptDelayMs: flags["attempt-delay"],
        timeoutMs,
        log: (line) => console.log(line),
        name: flags.host,
        lesson: LESSON,
      });
    }
  }
  using _ = conn;
  console.log(
    `connected to ${describeEndpoint(conn.remoteAddr.hostname, conn.remoteAddr.port)} ` +
      `from ${formatAddr(conn.localAddr)}`,
  );

  // Send every line, say we are done (half-close), print the answers until EOF.
  await withDeadline(conn, timeoutMs, "the answers", async () => {
    for (const message of messages) console.log(`> ${message}`);
    await writeAll(conn, utf8Encode(messages.map((m) => m + "\n").join("")));
    await conn.closeWrite();
    let count = 0;
    // requireNewline: an answer without its LF was cut short.
    const limits = {
      maxLineBytes: 1024,
      idleTimeoutMs: timeoutMs,
      what: "the server",
      requireNewline: true,
    };
    for await (const answer of readLines(conn, limits)) {
      if (++count > messages.length) {
        throw new LessonError(
          `the server sent more answers than we sent lines (${messages.length})`,
        );
      }
      console.log(`< ${terminalSafe(answer)}`);
    }
    if (count < messages.length) {
      throw new LessonError(`the server answered ${count} of ${messages.length} lines`);
    }
  });
});

/** Every address of `name`: from the lesson's DNS server (`--dns`) or the system resolver. */
async function resolve(
  name: string,
  dns: boolean,
  port: number,
  timeoutMs: number,
): Promise<string[]> {
  const addresses = dns
    ? await askLessonDns(name, port, timeoutMs)
    : await askSystem(name, timeoutMs);
  if (addresses.length === 0) throw new LessonError(`${name} has no IPv6 or IPv4 address`);
  return addresses;
}

/**
 * Two questions, AAAA (IPv6) then A (IPv4), each one UDP datagram to the
 * lesson server. One after the other so that the server's log reads in
 * order; RFC 8305 asks both at once, which `Promise.all` would do.
 */
async function askLessonDns(name: string, port: number, timeoutMs: number): Promise<string[]> {
  const nameServer = { ipAddr: "127.0.0.1", port };
  const ask = async (type: "AAAA" | "A") => {
    try {
      return await Deno.resolveDns(name, type, {
        nameServer,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      // "No such name" and "no record of this type" both arrive as NotFound.
      if (error instanceof Deno.errors.NotFound) return [];
      if (error instanceof Deno.errors.TimedOut || (error as Error).name === "TimeoutError") {
        throw new LessonError(
          `no answer from the lesson DNS server at udp 127.0.0.1:${port}: is the server ` +
            "running (without --no-dns)? start it with: deno task lesson16-server",
        );
      }
      throw new LessonError(`could not look up ${name}: ${(error as Error).message}`);
    }
  };
  const v6 = await ask("AAAA");
  const v4 = await ask("A");
  if (v6.length + v4.length === 0) {
    throw new LessonError(`no such name: the lesson DNS server has no address for ${name}`);
  }
  return [...v6, ...v4];
}

/** getaddrinfo, as curl and browsers use it: /etc/hosts first, then the system's DNS. */
async function askSystem(name: string, timeoutMs: number): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tooLate = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new LessonError(`no answer looking up ${name} after ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  try {
    const found = await Promise.race([lookup(name, { all: true }), tooLate]);
    return found.map((entry) => entry.address);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EPERM") {
      throw new LessonError(
        `not permitted to look up ${name}: the task's --allow-net list does not include it ` +
          "(the lesson's own names need --dns)",
      );
    }
    if (code === "ENOTFOUND") throw new LessonError(`no such host: ${name}`);
    throw error instanceof LessonError ? error : new LessonError(
      `could not look up ${name}: ${(error as Error).message}`,
    );
  } finally {
    clearTimeout(timer);
  }
}
