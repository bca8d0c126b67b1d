/**
 * The exercises, in order: which lesson file each one is, which tests check
 * it, and the hint a learner gets when a check fails (each hint is the trap
 * the lesson's README names).
 *
 * @module
 */

/** One exercise: `exercises/<dir>/<file>`, run in the place of `lessons/<dir>/<file>`. */
export interface Exercise {
  /** The lesson number, two digits: `deno task exercise 02`. */
  lesson: string;
  /** The lesson's folder name, the same under exercises/. */
  dir: string;
  /** The file the learner completes (the lesson's file of the same name is the solution). */
  file: string;
  /** The test file whose spawned-process checks judge it (under tests/). */
  tests: string;
  /** What the learner writes, in a few words. */
  task: string;
  /** The hint when a check fails (the lesson README's trap). */
  hint: string;
  /** Better hints for particular checks: the first whose pattern matches the check's name. */
  hints?: [RegExp, string][];
}

/** Every exercise, in the order of the course. */
export const EXERCISES: Exercise[] = [
  {
    lesson: "02",
    dir: "02-echo",
    file: "server.ts",
    tests: "lesson02_test.ts",
    task: "the echo loop: read until EOF, write it all back",
    hint: "One read is whatever has arrived, and one write may send only part of it: loop until " +
      "read says EOF, and write each chunk whole (writeAllWithTimeout) before reading on.",
    hints: [
      [
        /16 MiB/,
        "A single write may send only part: small tests pass, 16 MiB does not. Loop until " +
        "everything is written (writeAllWithTimeout does).",
      ],
      [
        /idle-timeout/,
        "A silent client must not hold the server for ever: pass { idleTimeoutMs } to " +
        "readChunks, so a read that waits too long throws a TimeoutError.",
      ],
    ],
  },
  {
    lesson: "03",
    dir: "03-capitalize",
    file: "server.ts",
    tests: "lesson03_test.ts",
    task: "decode the stream chunk by chunk, keeping split characters",
    hint: "Decoding chunk by chunk without a streaming decoder corrupts any character split " +
      "between two reads. Use the one Utf8StreamDecoder of the connection for every chunk, and " +
      "call its end() at EOF (it throws if the text stopped mid-character).",
  },
  {
    lesson: "04",
    dir: "04-addresses-and-ports",
    file: "client.ts",
    tests: "lesson04_test.ts",
    task: "read the server's one-line answer, then say goodbye in order",
    hint: "This server does not close after its answer: read one line (readLines, " +
      "requireNewline) instead of reading until EOF as in lesson 03, print it with " +
      "terminalSafe, then closeWrite() and wait for the server's EOF, each within --timeout " +
      "(withDeadline).",
    hints: [
      [
        /a byte every 300 ms/,
        "A deadline per read is not enough: a server that sends a byte every few seconds never " +
        'trips it. Take the answer inside withDeadline(conn, timeoutMs, "the server\'s answer", ...).',
      ],
      [
        /without its LF/,
        "An answer cut short is not an answer: readLines(conn, { ..., requireNewline: true }) " +
        "throws when the server closes in the middle of a line.",
      ],
      [
        /control codes/,
        "Text from the network is never shown raw: print `server says: ${terminalSafe(line)}`, " +
        "so an ESC or a CR shows as \\x1b or \\x0d instead of acting on your terminal.",
      ],
      [
        /never closes/,
        'The goodbye needs a deadline too: inside withDeadline(conn, timeoutMs, "the server ' +
        'to close", ...), closeWrite() and then wait for the EOF (lines.next()).',
      ],
    ],
  },
  {
    lesson: "05",
    dir: "05-line-framing",
    file: "server.ts",
    tests: "lesson05_test.ts",
    task: "the framed read loop: one answer per line, /bye",
    hint: "One read is not one message: on loopback small writes arrive whole, but --split and " +
      "--burst cut and glue them. Collect bytes until LF (readLines does) and answer each line.",
    hints: [
      [
        /max-line/,
        "No maximum line length means a client that never sends LF can use all your memory: " +
        "readLines(conn, options) enforces options.maxLineBytes and throws past it.",
      ],
      [
        /bye/,
        'Forgetting the CR: "a\\r" is not "a". readLines strips an optional CR; "/bye" gets ' +
        '"bye" and then the loop ends.',
      ],
    ],
  },
  {
    lesson: "06",
    dir: "06-length-prefix",
    file: "server.ts",
    tests: "lesson06_test.ts",
    task: "read length-prefixed frames and describe each one",
    hint: "One read, one frame: still false. A read may hold half a header, or three frames and " +
      "a bit; the length is 4 bytes big-endian (getUint32, not native order). readFrames keeps " +
      "the leftovers for you.",
    hints: [
      [
        /over the limit|refusal/,
        "Trusting the length: check it against --max-frame before allocating or waiting for the " +
        "body; then answer and close (readFrames(conn, options) throws past maxFrameBytes).",
      ],
    ],
  },
  {
    lesson: "07",
    dir: "07-app-protocol",
    file: "server.ts",
    tests: "lesson07_test.ts",
    task: "the message loop: answer requests, recover from errors or close",
    hint: "Carrying on after a fatal error: after bad-magic or too-large nobody knows where the " +
      "next message starts, so answer and close; the other errors (bad-checksum, bad-json, ...) " +
      "get a type-3 answer and the connection goes on.",
  },
  {
    lesson: "08",
    dir: "08-many-clients",
    file: "server.ts",
    tests: "lesson08_test.ts",
    task: "the accept loop: limit, register, serve without await",
    hint: "A forgotten await, or an extra one: with `await serve(client)` in the accept loop you " +
      "are back to lesson 02, one client at a time. Start serve(client) and accept the next.",
    hints: [
      [
        /max-connections|busy/,
        "Unbounded everything: a client over --max-connections (limit.tryOpen() says no) gets " +
        '"server busy" and is closed, and counts in stats.turnedAway.',
      ],
    ],
  },
  {
    lesson: "09",
    dir: "09-concurrent-client",
    file: "client.ts",
    tests: "lesson09_test.ts",
    task: "whichever task ends first: the server's goodbye, or a time limit",
    hint: "Race the reader and the writer (Promise.race). The reader first: the server closed, " +
      "say so and Deno.exit(0). The writer first: keep reading, but a timer closes the " +
      "connection after timeoutMs (a TimeoutError); clear it when reading ends, then print " +
      "the summary.",
    hints: [
      [
        /stdin is still open/,
        "One thing at a time: a client that waits for its writer (stdin) before its reader never " +
        "sees the server's goodbye. Race them; if the reader wins, print the summary and exit " +
        "with Deno.exit(0).",
      ],
      [
        /at most --timeout/,
        "Waiting for ever: after the half-close, set a timer that closes the connection after " +
        "timeoutMs; the pending read then fails, and you throw `timed out after S s waiting for " +
        "the server to close the connection` (a TimeoutError).",
      ],
      [
        /half-closes at once/,
        "A timer left running keeps the program alive until it fires: clearTimeout(timer) in a " +
        "finally once reading has ended, however it ended.",
      ],
    ],
  },
  {
    lesson: "10",
    dir: "10-every-core",
    file: "server.ts",
    tests: "lesson10_test.ts",
    task: "the port check, and the workers started one by one",
    hint: "Start the workers one after the other: the first binds --port (0: any free port) and " +
      "answers with the port it got, and the next ones bind that one (options.port = " +
      "reply.port). Before that, unless the port is 0, a plain Deno.listen (no reusePort) " +
      "checks that nobody holds it.",
    hints: [
      [
        /same port/,
        "Another port owner: with reusePort a second copy of the server joins the first " +
        "instead of failing. Open the port once with a plain Deno.listen first and close it; " +
        "if that throws, throw listenError(error, flags.host, flags.port).",
      ],
    ],
  },
  {
    lesson: "11",
    dir: "11-one-to-one-chat",
    file: "chat.ts",
    tests: "lesson11_test.ts",
    task: "the read side of a chat: print lines until /bye",
    hint: "A read is not a message: frame the peer's text (readMessages does, with a limit and " +
      "the pause for peers without newlines), print each as `client> TEXT` or `server> TEXT`, " +
      "and stop at /bye; EOF without /bye is a hang-up.",
    hints: [
      [
        /control characters/,
        "Printing a peer's text raw lets it rewrite your screen (a CR, an ESC sequence): print " +
        "`${peer}> ${terminalSafe(line)}`, so control characters show as \\x1b and the like.",
      ],
    ],
  },
  {
    lesson: "12",
    dir: "12-multi-user-chat",
    file: "room.ts",
    tests: "lesson12_test.ts",
    task: "broadcast, and the bounded outgoing queue",
    hint: "Writing straight to one user's socket from another's loop makes everyone wait for the " +
      "slowest: queue the line (this.#push) and let each connection write its own queue. An " +
      "unbounded queue only runs out of memory later: past maxQueueBytes, send returns false.",
    hints: [
      [
        /never reads/,
        "An unbounded queue is just a slower way to run out of memory: bound it in bytes " +
        "(this.#queuedBytes + the new line's bytes > maxQueueBytes: return false).",
      ],
    ],
  },
  {
    lesson: "14",
    dir: "14-udp",
    file: "client.ts",
    tests: "lesson14_test.ts",
    task: "retry a UDP request with exponential backoff",
    hint: "Waiting for ever: a lost datagram is silence, so every wait needs a deadline. Send, " +
      "wait `wait` ms for a reply naming the key (matching replies by order fails: they come " +
      "late, twice, or reordered), then send again waiting twice as long, at most --tries times.",
    hints: [
      [
        /fake server/,
        "Matching replies by order: a reply counts only if it starts with `KEY=`; anything else " +
        "(a repeat, a forgery, another key) goes to replies.ignored and you keep waiting.",
      ],
    ],
  },
  {
    lesson: "15",
    dir: "15-when-things-fail",
    file: "client.ts",
    tests: "lesson15_test.ts",
    task: "after a failure: a new connection, backoff, a retry budget",
    hint: "Retrying at once, for ever: after a failure close and forget the connection, then " +
      "retry only while the run's budget lasts (`no retries left: #N is lost` when it is 0), " +
      "each time after sleeping backoff(retry) ms; a connection that sat idle and was closed " +
      "is replaced at once, without using a retry.",
    hints: [
      [
        /pause it announces/,
        "Retrying at once: sleep the pause you print, `await sleep(wait)` with " +
        "`wait = backoff(retry)` (retry 0, 1, 2, ... of this request), so the pauses double.",
      ],
      [
        /budget is for the whole run/,
        "Retrying for ever: `budget` is for the whole run (--retries), not per request: do not " +
        "reset it; once it is 0, each failed request is lost at once.",
      ],
      [
        /rejects|slow server|flaky|restarts|heartbeat/,
        "Reusing a connection after an error: half a request or a late answer may still be in " +
        "it. Close it and set `session = undefined` before anything else, so the retry connects " +
        "again.",
      ],
      [
        /idle/,
        "A connection the server closed while it sat idle (`wasIdle`, and EOF, ECONNRESET or " +
        "EPIPE) is not this request's failure: reconnect at once (retry--, continue), no pause " +
        "and no retry used.",
      ],
    ],
  },
  {
    lesson: "19",
    dir: "19-tracing-proxy",
    file: "server.ts",
    tests: "lesson19_test.ts",
    task: "relay one direction: read, trace, forward, pass the FIN on",
    hint: "A proxy's direction is lesson 02's loop with another destination: read a chunk, " +
      "note it (and its hex dump), `await forward(chunk)`, read the next; at EOF `await flush()`, " +
      "then pass the half-close on with to.closeWrite() and let the other direction go on.",
    hints: [
      [
        /half-close/,
        "Closing both sides at the first EOF: the other side may still be answering. On EOF " +
        "(read returns null) call to.closeWrite(), never closeBoth, and return: the other " +
        "direction ends by itself.",
      ],
      [
        /16 MiB|slow receiver/,
        "Reading without waiting for the write: `await forward(chunk)` before the next read. " +
        "Without the await the proxy reads on, the reused buffer is overwritten under a write, " +
        "and a fast sender fills the proxy's memory.",
      ],
      [
        /reset/,
        "A reset is an error from the read, not an EOF: catch Deno.errors.ConnectionReset " +
        'around the read, set stats.end = "reset", note("RESET: closing both sides"), ' +
        "closeBoth(session) and return stats.",
      ],
      [
        /without LF/,
        "Forgetting what --rewrite holds: a last line with no LF is still in the rewriter at " +
        "EOF. `await flush()` before passing the FIN on.",
      ],
      [
        /bit by bit/,
        "A read is activity too: call touch() after each read, or a client whose bytes the " +
        "rewriter holds (no LF yet) looks idle and is cut off.",
      ],
    ],
  },
];

/** The exercise of lesson `lesson` ("2", "02" or "02-echo"), if there is one. */
export function findExercise(lesson: string): Exercise | undefined {
  const number = lesson.match(/^\d+/)?.[0];
  if (number === undefined) return undefined;
  return EXERCISES.find((exercise) => Number(exercise.lesson) === Number(number));
}

/** The hint for a failed check (its name, with the step's after " › "). */
export function hintFor(exercise: Exercise, checkName: string): string {
  return exercise.hints?.find(([pattern]) => pattern.test(checkName))?.[1] ?? exercise.hint;
}
