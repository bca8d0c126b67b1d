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
  /** The test files whose checks judge it (under tests/), run in this order. */
  tests: string[];
  /** What the learner writes, in a few words. */
  task: string;
  /** What a passing run proves, in one line. */
  proved: string;
  /** The hint when a check fails (the lesson README's trap); the first `--hint`. */
  hint: string;
  /**
   * Better hints for particular checks: the first whose pattern matches the
   * check's name. `--hint` shows them after `hint`, one at a time.
   */
  hints?: [RegExp, string][];
}

/** Every exercise, in the order of the course. */
export const EXERCISES: Exercise[] = [
  {
    lesson: "01",
    dir: "01-first-connection",
    file: "server.ts",
    tests: ["lesson01_test.ts"],
    task: "accept one connection, print the client's end, close",
    proved: "your server accepts one connection, names the client's end of it, and closes it",
    hint: "The client's port is not the server's port: accept() gives a new connection, and its " +
      "remoteAddr is the client (its address, and the ephemeral port its OS picked); its " +
      "localAddr is the server's own end. Print the client's end, close the connection, and " +
      "return: the server serves one client, then exits.",
  },
  {
    lesson: "02",
    dir: "02-echo",
    file: "server.ts",
    tests: ["lesson02_test.ts", "lesson02_short_write_test.ts"],
    task: "the echo loop: read until EOF, write it all back",
    proved: "your echo loop gives back every byte, in order, even when a write sends only " +
      "part of it, and a silent client cannot hold the server.",
    hint: "One read is whatever has arrived, and one write may send only part of it: loop until " +
      "read says EOF, and write each chunk whole (writeAllWithTimeout) before reading on.",
    hints: [
      [
        /16 MiB|reads slowly/,
        "A single write may send only part: once the socket's buffer is full (a client that " +
        "reads slowly), write takes what fits and returns. Loop until everything is written " +
        "(writeAllWithTimeout does).",
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
    tests: ["lesson03_test.ts"],
    task: "decode the stream chunk by chunk, keeping split characters",
    proved: "your server decodes a stream of UTF-8 however it is cut, answers each chunk at " +
      "once, and refuses bytes that are not text.",
    hint: "Decoding chunk by chunk without a streaming decoder corrupts any character split " +
      "between two reads. Use the one Utf8StreamDecoder of the connection for every chunk, and " +
      "call its end() at EOF (it throws if the text stopped mid-character).",
  },
  {
    lesson: "04",
    dir: "04-addresses-and-ports",
    file: "client.ts",
    tests: ["lesson04_test.ts"],
    task: "read the server's one-line answer, then say goodbye in order",
    proved: "your client reads one line within one deadline, shows it safely, and says " +
      "goodbye in order: half-close, then the server's EOF, within --timeout too.",
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
    tests: ["lesson05_test.ts", "lesson05_crlf_test.ts"],
    task: "the framed read loop: one answer per line, /bye",
    proved: "your server finds the lines in a stream whatever the reads are, answers each " +
      "one, and stops at the line limit.",
    hint: "One read is not one message: on loopback small writes arrive whole, but --split and " +
      "--burst cut and glue them. Collect bytes until LF (readLines does) and answer each line.",
    hints: [
      [
        /max-line/,
        "No maximum line length means a client that never sends LF can use all your memory: " +
        "readLines(conn, options) enforces options.maxLineBytes and throws past it.",
      ],
      [
        /bye|CR LF/,
        'Forgetting the CR: "a\\r" is not "a". readLines strips an optional CR; "/bye" gets ' +
        '"bye" and then the loop ends.',
      ],
    ],
  },
  {
    lesson: "06",
    dir: "06-length-prefix",
    file: "server.ts",
    tests: ["lesson06_test.ts"],
    task: "read length-prefixed frames and describe each one",
    proved: "your server reads length-prefixed frames split at any byte, and refuses a length " +
      "over the limit before its body.",
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
    tests: ["lesson07_test.ts"],
    task: "the message loop: answer requests, recover from errors or close",
    proved: "your server answers every request, survives every recoverable error, and closes " +
      "after a fatal one.",
    hint: "A protocol error is an answer too, and only a fatal one ends the connection: " +
      "bad-checksum, bad-json and the like get their type-3 answer (fail(code, message)) and " +
      "the loop goes on; after bad-magic or too-large nobody knows where the next message " +
      "starts, so answer it and stop.",
  },
  {
    lesson: "08",
    dir: "08-many-clients",
    file: "server.ts",
    tests: ["lesson08_test.ts"],
    task: "the accept loop: limit, register, serve without await",
    proved: "your server serves a thousand clients at once, turns away the one too many, and " +
      "no client can hold up another.",
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
    tests: ["lesson09_test.ts"],
    task: "whichever task ends first: the server's goodbye, or a time limit",
    proved: "your client notices the server's goodbye while you still type, and waits at most " +
      "--timeout for it after your half-close.",
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
    tests: ["lesson10_test.ts"],
    task: "the port check, and the workers started one by one",
    proved: "your server starts its workers on one port, the one --port 0 picked, and " +
      "refuses a port that another program holds.",
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
    tests: ["lesson11_test.ts"],
    task: "the read side of a chat: print lines until /bye",
    proved: "your chat prints each of the peer's messages safely, however they arrive, and " +
      "knows how the chat ended.",
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
    tests: ["lesson12_outbox_test.ts", "lesson12_test.ts"],
    task: "broadcast, and the bounded outgoing queue",
    proved: "your room reaches everyone but the sender, and a reader that falls behind is cut " +
      "off instead of eating memory.",
    hint: "Writing straight to one user's socket from another's loop makes everyone wait for the " +
      "slowest: queue the line (this.#push) and let each connection write its own queue. An " +
      "unbounded queue only runs out of memory later: past maxQueueBytes, send returns false.",
    hints: [
      [
        /never reads|maxQueueBytes/,
        "An unbounded queue is just a slower way to run out of memory: bound it in bytes " +
        "(this.#queuedBytes + the new line's bytes > maxQueueBytes: return false).",
      ],
      [
        /after close/,
        "After close, a line is ignored: send returns true (a closing queue is not a slow " +
        "reader) and queues nothing, so nothing follows the last line.",
      ],
    ],
  },
  {
    lesson: "13",
    dir: "13-browser-chat",
    file: "websocket.ts",
    tests: ["lesson13_frames_test.ts"],
    task: "a WebSocket frame header: its length, and the limit on it",
    proved:
      "your decoder refuses a WebSocket message over the limit from its header, before any payload is kept",
    hint: "The length is 7 bits, or 126 then 16 bits, or 127 then 64 bits, in network byte order " +
      "(DataView's getUint16, getUint32: big-endian by default); the mask comes after it " +
      "(`at` 2, 4 or 10). Read wrongly, every longer message unmasks into garbage.",
    hints: [
      [
        /60 MiB|4,097|fragments/,
        "Checking the limit after buffering protects nothing: the length field is a promise. " +
        "Refuse it on the header (1009), before one byte of payload is kept, and count the " +
        "message so far: this.#messageBytes + length > this.#max.",
      ],
      [
        /all 64 bits|top bit/,
        "Reading only the low 32 bits of a 64-bit length: 4 GiB + 9 looks like 9. Both halves " +
        "count (high * 2 ** 32 + low), and a length with its top bit set is a protocol error.",
      ],
    ],
  },
  {
    lesson: "14",
    dir: "14-udp",
    file: "client.ts",
    tests: ["lesson14_test.ts"],
    task: "retry a UDP request with exponential backoff",
    proved: "your client retries a lost datagram with exponential backoff, and only a reply " +
      "naming its key counts.",
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
    tests: ["lesson15_test.ts"],
    task: "after a failure: a new connection, backoff, a retry budget",
    proved: "your client retries on a new connection, after a doubling pause with jitter, " +
      "within one budget for the whole run, and replaces an idle connection at once.",
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
    lesson: "16",
    dir: "16-ipv6-and-names",
    file: "eyeballs.ts",
    tests: ["lesson16_test.ts"],
    task: "Happy Eyeballs: staggered attempts, the first to connect wins",
    proved:
      "your Happy Eyeballs starts the next address after 250 ms or a failure, and the first to connect wins",
    hint: "Start an attempt without awaiting it. A failure starts the next address at once (not " +
      "after the 250 ms: that would log a `no answer` that is not true); no answer within " +
      "attemptDelayMs starts it as well; the first to connect wins: finish(conn).",
    hints: [
      [
        /silent/,
        "Trying one address after the other: a silent address (packets dropped, no refusal) " +
        "holds you until the timeout. Set delayTimer so the next address starts after " +
        "attemptDelayMs while this one keeps trying, and let the winner abort the rest " +
        "(cancel.signal): a pending connect keeps the program from exiting.",
      ],
    ],
  },
  {
    lesson: "17",
    dir: "17-unix-sockets",
    file: "server.ts",
    tests: ["lesson17_test.ts"],
    task: "a stale socket file or a live server: ask, then remove",
    proved:
      "your server tells a stale socket file from a live server, and never removes what is not a socket",
    hint: "Deleting the file before listening cuts a live server off from every new client, " +
      "silently. On AddrInUse, connect first (answers(path, other)): a server that accepts is " +
      "live, leave it; only then is the file stale.",
    hints: [
      [
        /regular file/,
        "Removing whatever is at the path: only a socket is ours to remove. Deno.lstatSync(path)" +
        ".isSocket; a regular file (someone's notes) is refused in one line and left alone.",
      ],
      [
        /stale socket file we may not remove/,
        "A stale file you may not remove (another user's, a read-only directory) is one line: " +
        'catch the error of Deno.removeSync, "permission denied (another user\'s file?)" for ' +
        "PermissionDenied, and exit 1, no stack trace.",
      ],
    ],
  },
  {
    lesson: "18",
    dir: "18-tls",
    file: "tls.ts",
    tests: ["lesson18_test.ts"],
    task: "read the STARTTLS line byte by byte, bounded",
    proved:
      "your STARTTLS line reader takes exactly one bounded line, and not a byte of the TLS handshake after it",
    hint: "Reading ahead: a read into a big buffer takes `STARTTLS\\nHELLO\\n` whole, and HELLO " +
      "(plain text an attacker slipped in) is then kept instead of going to TLS (CVE-2011-0411). " +
      "Read one byte at a time and stop at the LF; a CR before it is not part of the line.",
    hints: [
      [
        /64 bytes/,
        "No limit means a client that never sends LF holds the connection until its timeout: " +
        "past maxBytes, throw a LessonError (`${what} sent a line longer than ${maxBytes} bytes`).",
      ],
      [
        /CR LF/,
        'Forgetting the CR: "STARTTLS\\r" is not "STARTTLS". Strip one CR before the LF.',
      ],
    ],
  },
  {
    lesson: "19",
    dir: "19-tracing-proxy",
    file: "server.ts",
    tests: ["lesson19_test.ts"],
    task: "relay one direction: read, trace, forward, pass the FIN on",
    proved: "your proxy relays every byte both ways with backpressure, passes a half-close " +
      "on, and closes both sides on a reset.",
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
  {
    lesson: "20",
    dir: "20-redis-chat",
    file: "shared_room.ts",
    tests: ["lesson20_test.ts"],
    task: "claim a name in Redis for every server at once",
    proved: "your claim lets Redis give each name once, across servers, and never leaves a " +
      "name to a user who is gone or announces it late.",
    hint: "A name is decided in Redis, not here: refuse what this.has(name) knows, then one " +
      "SET with NX and PX through this.#ask; after the wait look again (session.ended, " +
      "super.has), then super.claim and await the joined #publish before answering true.",
    hints: [
      [
        /one name/,
        "Asking Redis, then deciding: with a GET then a SET, or a SET without NX, two servers " +
        "both find the name free. One command decides: this.#redis.set(key, this.id, " +
        "{ NX: true, PX: expiry }) answers null if another server has it.",
      ],
      [
        /ok name/,
        "Answering before the others know: `ok name` goes out when claim returns, so await " +
        'this.#publish("joined", name) first; otherwise a message to the new name from ' +
        "another server can still get error no-such-user.",
      ],
      [
        /cut off while/,
        "The user may be gone when Redis answers (cut off, idle, the server stopping): after the " +
        "wait, if session.ended (or someone here took the name), this.#dropName(name) and " +
        "refuse. Otherwise the name belongs to nobody, for ever.",
      ],
      [
        /frozen/,
        "Waiting forever on the broker: wrap every Redis call in this.#ask (a 2 s deadline) and " +
        "catch its failure with this.#away(error); then the name is decided on this server " +
        "alone, like lesson 12.",
      ],
    ],
  },
  {
    lesson: "21",
    dir: "21-http",
    file: "request.ts",
    tests: ["lesson21_test.ts"],
    task: "the header-reading loop, with its limits",
    proved:
      "your header loop reads Name: value lines to the empty line, within 8 KiB a line, 100 headers and 16 KiB, and refuses folding",
    hint: "A head is lines up to an empty one, and a stranger writes them: count each line's " +
      "bytes (+ 2 for CRLF) and the headers as you go (over either limit: HttpError 431), " +
      "refuse a folded line or a bad name with 400, and stop at the empty line.",
    hints: [
      [
        /refusal/,
        "Every limit and rule is checked byte for byte: 101 headers or 16 KiB in all is a 431, " +
        "a line starting with a space (obs-fold) or a name with a space before the colon a 400.",
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

/** The hints of an exercise in the order `--hint` shows them: general, then particular. */
export function hintsOf(exercise: Exercise): string[] {
  return [exercise.hint, ...(exercise.hints ?? []).map(([, hint]) => hint)];
}
