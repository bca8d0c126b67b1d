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
    from: "if (!limit.tryOpen()) {",
    to: "if (!limit.tryOpen() && false) {",
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
    from: "  send(line: string): boolean {\n    if (this.#closing) return true;\n",
    to: "  send(line: string): boolean {\n",
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
