/**
 * Every pitfall an exercise names (each of its hints, tools/exercise_list.ts)
 * is caught by its check: the bug is put into the lesson's own file (a string
 * replacement in a scratch copy under tests/artifacts/), `deno task exercise
 * NN --file THAT` runs the exercise's checks on it (only those that catch
 * it, with --only, where the others would take long), and a real check must
 * fail (not the type check: the mutant is a program that runs).
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { EXERCISES, findExercise, hintsOf } from "../tools/exercise_list.ts";
import { runTask } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);

/** A bug put into lesson `lesson`'s solution: replace `from` with `to`. */
interface Mutant {
  lesson: string;
  /** The index of the hint (the pitfall) in hintsOf(exercise) that names this bug. */
  pitfall: number;
  /** What the bug is, in a few words. */
  bug: string;
  from: string;
  to: string;
  /** Run only the checks (or steps) whose name holds this: the ones that catch it, fast. */
  only?: string;
}

/** A frame reader that reads its own 4-byte length (`littleEndian`: the byte-order bug). */
const frameReader = (littleEndian: boolean) =>
  `(async function* () {
      let pending = new Uint8Array(0);
      const buffer = new Uint8Array(65536);
      let n: number | null;
      while ((n = await conn.read(buffer)) !== null) {
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(buffer.subarray(0, n), pending.length);
        pending = joined;
        while (pending.length >= 4) {
          const length = new DataView(pending.buffer, pending.byteOffset).getUint32(0, ${littleEndian});
          if (length > options.maxFrameBytes) return;
          if (pending.length < 4 + length) break;
          yield pending.slice(4, 4 + length);
          pending = pending.slice(4 + length);
        }
      }
    })()`;

/** Lesson 20's claim in Redis: one SET with NX and PX, through #ask. */
const SET_NX = `        const reply = await this.#ask(this.#redis.set(NAME_PREFIX + name, this.id, {
          NX: true,
          PX: this.#options.expiryMs,
        }));
        if (reply === null) return false; // another server has it`;

export const MUTANTS: Mutant[] = [
  {
    lesson: "02",
    pitfall: 0,
    bug: "one read, then stop (a read taken for the whole message)",
    only: "16 MiB",
    from: "      echoed += chunk.length;\n",
    to: "      echoed += chunk.length;\n      break;\n",
  },
  {
    lesson: "02",
    pitfall: 1,
    bug: "conn.write(chunk): one write, which may send only part",
    only: "reads slowly",
    from: 'await writeAllWithTimeout(conn, chunk, idleTimeoutMs, "the client");',
    to: "await conn.write(chunk);",
  },
  {
    lesson: "02",
    pitfall: 2,
    bug: "no idle timeout on reads (an hour)",
    only: "idle-timeout",
    from: 'readChunks(conn, { idleTimeoutMs, what: "the client" })',
    to: 'readChunks(conn, { idleTimeoutMs: 3_600_000, what: "the client" })',
  },
  {
    lesson: "03",
    pitfall: 0,
    bug: "a new decoder for each chunk",
    from: "await reply(decoder.decode(chunk));",
    to: "await reply(new Utf8StreamDecoder().decode(chunk));",
  },
  {
    lesson: "03",
    pitfall: 0,
    bug: "no end() at EOF",
    from: "    await reply(decoder.end());",
    to: "",
  },
  {
    lesson: "04",
    pitfall: 0,
    bug: "the answer read until EOF, as in lesson 03",
    only: "the port the client reports",
    from:
      '      const { value, done } = await lines.next();\n      if (done) throw new LessonError("the server closed the connection before answering");\n      return value;\n',
    to:
      '      let text = "";\n      for await (const line of lines) text += line + "\\n";\n      if (text === "") throw new LessonError("the server closed the connection before answering");\n      return text.trimEnd();\n',
  },
  {
    lesson: "04",
    pitfall: 1,
    bug: "a deadline per read only, none for the whole answer",
    only: "a byte every 300 ms",
    from:
      '    const line = await withDeadline(conn, timeoutMs, "the server\'s answer", async () => {',
    to: "    const line = await ((read: () => Promise<string>) => read())(async () => {",
  },
  {
    lesson: "04",
    pitfall: 2,
    bug: "an answer without its LF taken whole",
    only: "without its lf",
    from: "      requireNewline: true, // an answer without its LF was cut short\n",
    to: "",
  },
  {
    lesson: "04",
    pitfall: 3,
    bug: "the server's text printed raw",
    only: "control codes",
    from: "server says: ${terminalSafe(line)}",
    to: "server says: ${line}",
  },
  {
    lesson: "04",
    pitfall: 4,
    bug: "the goodbye without a deadline",
    only: "never closes",
    from:
      '    await withDeadline(conn, timeoutMs, "the server to close", async () => {\n      await conn.closeWrite();\n      await lines.next();\n    });\n',
    to: "    await conn.closeWrite();\n    await lines.next();\n",
  },
  {
    lesson: "05",
    pitfall: 0,
    bug: "each read taken as one message",
    from: "    if (naive) {",
    to: "    if (naive || true) {",
  },
  {
    lesson: "05",
    pitfall: 1,
    bug: "no maximum line length",
    only: "max-line",
    from: "for await (const line of readLines(conn, options)) {",
    to: "for await (const line of readLines(conn, { ...options, maxLineBytes: 2 ** 30 })) {",
  },
  {
    lesson: "05",
    pitfall: 2,
    bug: "lines framed by hand, the CR kept",
    only: "CR LF",
    from: "for await (const line of readLines(conn, options)) {",
    to: `for await (const line of (async function* () {
        let pending = new Uint8Array(0);
        for await (const chunk of readChunks(conn, options)) {
          const joined = new Uint8Array(pending.length + chunk.length);
          joined.set(pending);
          joined.set(chunk, pending.length);
          let start = 0, lf: number;
          while ((lf = joined.indexOf(10, start)) !== -1) {
            yield utf8Decode(joined.subarray(start, lf));
            start = lf + 1;
          }
          pending = joined.slice(start);
        }
      })()) {`,
  },
  {
    lesson: "06",
    pitfall: 0,
    bug: "one read taken as one frame",
    from: "for await (const frame of readFrames(conn, options)) {",
    to: `for await (const frame of (async function* () {
      const buffer = new Uint8Array(1 << 20);
      let n: number | null;
      while ((n = await conn.read(buffer)) !== null) {
        const length = new DataView(buffer.buffer).getUint32(0);
        yield buffer.slice(4, Math.min(4 + length, n));
      }
    })()) {`,
  },
  {
    lesson: "06",
    pitfall: 0,
    bug: "the length read little-endian (native order)",
    from: "for await (const frame of readFrames(conn, options)) {",
    to: `for await (const frame of ${frameReader(true)}) {`,
  },
  {
    lesson: "06",
    pitfall: 1,
    bug: "no limit on the length",
    only: "over the limit",
    from: "for await (const frame of readFrames(conn, options)) {",
    to: "for await (const frame of readFrames(conn, { ...options, maxFrameBytes: 2 ** 32 })) {",
  },
  {
    lesson: "07",
    pitfall: 0,
    bug: "every protocol error closes the connection",
    from: "if (item.fatal) break;",
    to: "break;",
  },
  {
    lesson: "07",
    pitfall: 0,
    bug: "a protocol error is not answered",
    only: "recoverable",
    from: "        await send(fail(item.code, item.message));\n",
    to: "",
  },
  {
    lesson: "08",
    pitfall: 0,
    bug: "await serve(client) in the accept loop",
    only: "slow client does not hold up",
    from: "      showCount();\n      serve(client);",
    to: "      showCount();\n      await serve(client);",
  },
  {
    lesson: "08",
    pitfall: 1,
    bug: "no connection limit",
    only: "max-connections",
    from: "if (!await limit.acquire()) {",
    to: "if (!await limit.acquire() && false) {",
  },
  {
    lesson: "09",
    pitfall: 0,
    bug: "no summary once the server has closed",
    only: "piped lines",
    from:
      "  console.log(`sent ${sent} bytes, got ${received} bytes, the server closed the connection`);\n",
    to: "",
  },
  {
    lesson: "09",
    pitfall: 1,
    bug: "the writer awaited before the reader",
    only: "stdin is still open",
    from:
      '  const first = await Promise.race([reading.then(() => "reader"), writing.then(() => "writer")]);',
    to: '  const first = await writing.then(() => "writer");',
  },
  {
    lesson: "09",
    pitfall: 2,
    bug: "no time limit after the half-close",
    only: "at most --timeout",
    from: "    closeQuietly(conn);\n  }, timeoutMs);",
    to: "  }, timeoutMs);",
  },
  {
    lesson: "09",
    pitfall: 3,
    bug: "the timer left running",
    only: "half-closes at once",
    from: "  } finally {\n    clearTimeout(timer);\n  }\n",
    to: "  } finally {\n  }\n",
  },
  {
    lesson: "10",
    pitfall: 0,
    bug: "every worker asks for port 0",
    only: "every core",
    from: '      if (reply.type === "listening") options.port = reply.port;\n',
    to: "",
  },
  {
    lesson: "10",
    pitfall: 1,
    bug: "no port check before the workers share it",
    only: "same port",
    from:
      "  if (flags.port !== 0) {\n    try {\n      Deno.listen({ hostname: flags.host, port: flags.port }).close();",
    to:
      "  if (flags.port === -1) {\n    try {\n      Deno.listen({ hostname: flags.host, port: flags.port }).close();",
  },
  {
    lesson: "11",
    pitfall: 0,
    bug: "EOF taken for the peer's /bye",
    from: 'return this.#saidBye ? { by: "you" } : { by: "hangup" };',
    to: 'return this.#saidBye ? { by: "you" } : { by: "peer" };',
  },
  {
    lesson: "11",
    pitfall: 0,
    bug: "no stop at /bye",
    from: 'if (line === BYE) return this.#saidBye ? { by: "you" } : { by: "peer" };',
    to: "",
  },
  {
    lesson: "11",
    pitfall: 1,
    bug: "the peer's text printed raw",
    from: "this.#print(`${peer}> ${terminalSafe(line)}`);",
    to: "this.#print(`${peer}> ${line}`);",
  },
  {
    lesson: "12",
    pitfall: 0,
    bug: "writing straight to the socket, no queue",
    from: "    this.#push(data);\n    return true;",
    to: "    this.#conn.write(data).catch(() => {});\n    return true;",
  },
  {
    lesson: "12",
    pitfall: 1,
    bug: "an unbounded queue",
    from: "    if (this.#queuedBytes + data.length > this.#options.maxQueueBytes) return false;\n",
    to: "",
  },
  {
    lesson: "12",
    pitfall: 2,
    bug: "a line sent after close is queued",
    from: "  send(line: string | Uint8Array): boolean {\n    if (this.#closing) return true;\n",
    to: "  send(line: string | Uint8Array): boolean {\n",
  },
  {
    lesson: "14",
    pitfall: 0,
    bug: "waiting (an hour) for a reply",
    from: "const deadline = performance.now() + wait;",
    to: "const deadline = performance.now() + 3_600_000;",
  },
  {
    lesson: "14",
    pitfall: 0,
    bug: "no backoff: the same wait every try",
    from: "    wait *= 2;\n",
    to: "",
  },
  {
    lesson: "14",
    pitfall: 1,
    bug: "any reply taken for the answer",
    from: "if (reply.startsWith(`${key}=`)) break;",
    to: "break;",
  },
  {
    lesson: "15",
    pitfall: 0,
    bug: "no budget: retries for ever",
    only: "connection refused",
    from: "        if (budget === 0) {\n",
    to: "        if (budget < -100) {\n",
  },
  {
    lesson: "15",
    pitfall: 1,
    bug: "no pause before a retry",
    only: "pause it announces",
    from: "        await sleep(wait);\n",
    to: "",
  },
  {
    lesson: "15",
    pitfall: 1,
    bug: "the first pause every time, never doubled",
    only: "pause it announces",
    from: "const wait = backoff(retry);",
    to: "const wait = backoff(0);",
  },
  {
    lesson: "15",
    pitfall: 2,
    bug: "a budget per request",
    only: "budget is for the whole run",
    from: "    const line = settings.plain ? text :",
    to: "    budget = settings.retries;\n    const line = settings.plain ? text :",
  },
  {
    lesson: "15",
    pitfall: 3,
    bug: "the failed connection kept for the retry",
    only: "rejects",
    from:
      "        session?.close();\n        session = undefined; // never reuse a connection after a failure: its state is unknown\n",
    to: "",
  },
  {
    lesson: "15",
    pitfall: 4,
    bug: "an idle connection's failure charged as a retry",
    only: "closed while idle",
    from: '        if (wasIdle && ["EOF", "ECONNRESET", "EPIPE"]',
    to: '        if (false && wasIdle && ["EOF", "ECONNRESET", "EPIPE"]',
  },
  {
    lesson: "19",
    pitfall: 0,
    bug: "the FIN not passed on",
    only: "trace shows",
    from: "    await to.closeWrite().catch(() => {});\n",
    to: "",
  },
  {
    lesson: "19",
    pitfall: 1,
    bug: "both sides closed at the first EOF",
    only: "half-close is passed on",
    from: "    await to.closeWrite().catch(() => {});\n",
    to: "    closeBoth(session);\n",
  },
  {
    lesson: "19",
    pitfall: 2,
    bug: "the next read before the write has finished",
    only: "slow receiver",
    from: "      await forward(chunk);\n    }",
    to: "      forward(chunk);\n    }",
  },
  {
    lesson: "19",
    pitfall: 3,
    bug: "a reset taken for an error like any other",
    only: "reset on either side",
    from: "        if (!(error instanceof Deno.errors.ConnectionReset)) throw error;\n",
    to: "        throw error;\n",
  },
  {
    lesson: "19",
    pitfall: 4,
    bug: "what --rewrite holds not flushed at EOF",
    only: "without lf",
    from: "    await flush();\n",
    to: "",
  },
  {
    lesson: "19",
    pitfall: 5,
    bug: "a read not counted as activity",
    only: "bit by bit",
    from: "      if (n === null) break;\n      touch();\n",
    to: "      if (n === null) break;\n",
  },
  {
    lesson: "01",
    pitfall: 0,
    bug: "the server's own end printed, not the client's",
    from: "console.log(`connection from ${formatAddr(conn.remoteAddr)}`);",
    to: "console.log(`connection from ${formatAddr(conn.localAddr)}`);",
  },
  {
    lesson: "13",
    pitfall: 0,
    bug: "a 16-bit length read little-endian",
    from: "length = view.getUint16(2);",
    to: "length = view.getUint16(2, true);",
  },
  {
    lesson: "13",
    pitfall: 1,
    bug: "no limit checked on the header",
    from: "if (opcode < 0x8 && this.#messageBytes + length > this.#max) {",
    to: "if (false) {",
  },
  {
    lesson: "13",
    pitfall: 2,
    bug: "only the low 32 bits of a 64-bit length",
    from: "length = high * 2 ** 32 + view.getUint32(6);",
    to: "length = view.getUint32(6);",
  },
  {
    lesson: "16",
    pitfall: 0,
    bug: "a failure waits for the timer",
    from:
      "        if (next < addresses.length) startNext(); // a failure starts the next one at once",
    to: "        if (next < addresses.length) void 0; // a failure starts the next one at once",
  },
  {
    lesson: "16",
    pitfall: 1,
    bug: "one address after the other (no attempt delay)",
    from: "}, options.attemptDelayMs);",
    to: "}, 3_600_000);",
  },
  {
    lesson: "17",
    pitfall: 0,
    bug: "the path taken without asking who holds it",
    from: "  if (await answers(path, other)) {",
    to: "  if (false && await answers(path, other)) {",
    only: "live socket",
  },
  {
    lesson: "17",
    pitfall: 1,
    bug: "whatever is at the path removed",
    from: "  if (!info.isSocket) {",
    to: "  if (false) {",
    only: "regular file",
  },
  {
    lesson: "17",
    pitfall: 2,
    bug: "the removal's error not caught",
    from: "  try {\n    Deno.removeSync(path);\n  } catch (error) {\n    // Another user's",
    to:
      "  Deno.removeSync(path);\n  if (Math.random() > 2) {\n    const error: unknown = 0;\n    // Another user's",
    only: "may not remove",
  },
  {
    lesson: "18",
    pitfall: 0,
    bug: "reading ahead into a buffer",
    from: "const one = new Uint8Array(1);",
    to: "const one = new Uint8Array(64);",
    only: "before TLS",
  },
  {
    lesson: "18",
    pitfall: 1,
    bug: "no limit on the line",
    from: "if (length === maxBytes) {",
    to: "if (false) {",
    only: "over 64 bytes",
  },
  {
    lesson: "18",
    pitfall: 2,
    bug: "the CR kept",
    from: '.replace(/\\r$/, "")',
    to: "",
    only: "CR LF",
  },
  {
    lesson: "20",
    pitfall: 0,
    bug: "a GET, then a SET: two servers both find the name free",
    only: "one name",
    from: SET_NX,
    to: `        const holder = await this.#ask(this.#redis.get(NAME_PREFIX + name));
        if (holder !== null) return false;
        await this.#ask(this.#redis.set(NAME_PREFIX + name, this.id, { PX: this.#options.expiryMs }));`,
  },
  {
    lesson: "20",
    pitfall: 1,
    bug: "a SET without NX: the last server to ask wins",
    only: "one name",
    from: "          NX: true,\n          PX: this.#options.expiryMs,",
    to: "          PX: this.#options.expiryMs,",
  },
  {
    lesson: "20",
    pitfall: 2,
    bug: "`ok name` before the joined PUBLISH went out",
    only: "once the other servers know",
    from: '    await this.#publish("joined", name);\n    return true;',
    to: '    this.#publish("joined", name);\n    return true;',
  },
  {
    lesson: "20",
    pitfall: 3,
    bug: "no second look after the wait: a name for a user who is gone",
    only: "cut off while",
    from: "    if (session.ended || super.has(name)) {",
    to: "    if (super.has(name)) {",
  },
  {
    lesson: "20",
    pitfall: 4,
    bug: "waiting for Redis without a deadline",
    only: "frozen",
    from: SET_NX,
    to: `        const reply = await this.#redis.set(NAME_PREFIX + name, this.id, {
          NX: true,
          PX: this.#options.expiryMs,
        });
        if (reply === null) return false; // another server has it`,
  },
  {
    lesson: "20",
    pitfall: 4,
    bug: "a Redis failure not caught: the claim throws",
    only: "frozen",
    from:
      "      } catch (error) {\n        this.#away(error); // then the name is only checked here, like lesson 12\n      }",
    to: "      } finally {\n        // nothing\n      }",
  },
  {
    lesson: "21",
    pitfall: 0,
    bug: "no limit on the head's bytes",
    from: "if (headBytes > limits.maxHeadBytes) {",
    to: "if (false) {",
    only: "every refusal",
  },
  {
    lesson: "21",
    pitfall: 1,
    bug: "a folded header line accepted",
    from:
      'if (line[0] === " " || line[0] === "\\t") throw new HttpError(400, "a folded header line");',
    to: "",
    only: "every refusal",
  },
];

Deno.test("exercise pitfalls: every hint of every exercise has a bug that shows it", () => {
  for (const exercise of EXERCISES) {
    hintsOf(exercise).forEach((hint, i) => {
      assert(
        MUTANTS.some((m) => m.lesson === exercise.lesson && m.pitfall === i),
        `exercise ${exercise.lesson}'s hint ${i + 1} names a pitfall no mutant applies: ${hint}`,
      );
    });
  }
  for (const mutant of MUTANTS) {
    const exercise = findExercise(mutant.lesson)!;
    assert(mutant.pitfall < hintsOf(exercise).length, mutant.bug);
  }
});

/** Runs `items` through `work`, at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>) {
  const queue = [...items];
  const errors: unknown[] = [];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        await work(item).catch((error) => errors.push(error));
      }
    }),
  );
  if (errors.length > 0) throw new AggregateError(errors, errors.map(String).join("\n\n"));
}

Deno.test("exercise pitfalls: each bug, put in the lesson's file, fails the exercise's check", async () => {
  const artifacts = new URL("tests/artifacts/", ROOT);
  Deno.mkdirSync(artifacts, { recursive: true });
  const dir = Deno.makeTempDirSync({ dir: artifacts.pathname, prefix: "mutants-" });
  try {
    // Two at a time: the checks spawn servers and clients, and the machine has two cores.
    await pool(MUTANTS, 2, async (mutant) => {
      const exercise = findExercise(mutant.lesson)!;
      const solution = Deno.readTextFileSync(
        new URL(`lessons/${exercise.dir}/${exercise.file}`, ROOT),
      );
      assertEquals(
        solution.split(mutant.from).length,
        2,
        `exercise ${mutant.lesson} (${mutant.bug}): the text to replace is not in the lesson's ` +
          `file exactly once; update the mutant to the lesson's code`,
      );
      const path = `${dir}/${mutant.lesson}-${MUTANTS.indexOf(mutant)}-${exercise.file}`;
      Deno.writeTextFileSync(path, solution.replace(mutant.from, mutant.to));
      const started = performance.now();
      const only = mutant.only === undefined ? [] : ["--only", mutant.only];
      const result = await runTask("exercise", [mutant.lesson, "--file", path, ...only], {
        timeoutMs: 120_000,
      });
      const why = `exercise ${mutant.lesson} with the bug "${mutant.bug}":\n${result.stdout}`;
      assertEquals([result.code, result.timedOut], [1, false], why);
      const failed = result.stdout.match(/^The check that failed: (.+)$/m)?.[1];
      if (failed === undefined) throw new Error(`no failed check: ${why}`);
      assert(!failed.startsWith("deno check"), `the mutant does not type-check: ${why}`);
      assertMatch(result.stdout, /\nHint: .+/, why);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      console.log(`exercise ${mutant.lesson}, ${mutant.bug}: fails ${failed} [${seconds} s]`);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
