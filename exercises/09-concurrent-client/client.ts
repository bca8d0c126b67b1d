// deno-lint-ignore-file no-unused-vars -- unfinished on purpose: what you need is already here
/**
 * EXERCISE 09: what the client does once one of its two tasks has finished is
 * yours to write.
 * Look for TODO(exercise), write that part, then run `deno task exercise 09`:
 * lesson 09's own tests check your file in the lesson's place.
 *
 * Lesson 09 client: reading and writing on one connection, independently.
 *
 * Two tasks share the connection. The writer sends what you type (or pipe)
 * as soon as it has it; the reader prints whatever the server sends as soon
 * as it arrives. Neither waits for the other, the way the classic guides use
 * a send thread and a receive thread. When standard input ends, the writer
 * half-closes and the reader gets the rest, within a time limit.
 *
 * `--load` turns it into a load generator (lib/load.ts): many connections
 * at once, every echoed byte checked, with round trips/s, MB/s and latency.
 */
import {
  closeQuietly,
  connect,
  formatAddr,
  LessonError,
  LineDecoder,
  parseFlags,
  runMain,
  terminalSafe,
  TimeoutError,
  UsageError,
  utf8Encode,
  writeAll,
} from "../../lib/mod.ts";
import {
  formatProgress,
  formatReport,
  type LoadOptions,
  LoadStats,
  runLoad,
} from "../../lib/load.ts";

/** The longest line we print from the server (a peer that never sends LF cannot fill our memory). */
const MAX_LINE_BYTES = 64 * 1024;
/** The most a --load run may hold in message buffers (connections × size). */
const MAX_LOAD_BUFFER_BYTES = 256 * 1024 * 1024;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 9,
    role: "client",
    summary: "Sends standard input to the server line by line while printing what comes back. " +
      "With --load, measures an echo server instead.",
    flags: {
      timeout: {
        type: "number",
        description: "the longest wait for the server: after stdin ends, or for an echo",
        default: 10,
        min: 0.1,
        integer: false,
        value: "SECONDS",
      },
      load: {
        type: "boolean",
        description: "run a load test: many connections, every byte checked",
      },
      connections: {
        type: "number",
        description: "with --load: connections at once (default 10; 1 with --stream)",
        min: 1,
        max: 1000,
        value: "N",
      },
      messages: {
        type: "number",
        description: "with --load: round trips per connection (default 1000)",
        min: 1,
        max: 100_000_000,
        value: "M",
      },
      size: {
        type: "number",
        description: "with --load: bytes per message (default 64; with --stream, per write: 65536)",
        min: 1,
        max: 16 * 1024 * 1024,
        value: "BYTES",
      },
      stream: {
        type: "number",
        description: "with --load: write continuously for this long instead of ping-pong",
        min: 0.1,
        max: 3600,
        integer: false,
        value: "SECONDS",
      },
    },
    epilog: [
      "Examples:",
      '  echo "hello" | deno task lesson09-client',
      "  deno task lesson09-client --load --connections 10 --messages 1000 --size 64",
      "  deno task lesson09-client --load --stream 5",
    ].join("\n"),
  });
  const timeoutMs = flags.timeout * 1000;
  const endpoint = { host: flags.host, port: flags.port, lesson: 9 };

  if (!flags.load) {
    for (const name of ["connections", "messages", "size", "stream"] as const) {
      if (flags[name] !== undefined) throw new UsageError(`--${name} only works with --load`);
    }
    using conn = await connect(endpoint);
    return await interactive(conn, timeoutMs);
  }

  // --load: ping-pong (the default) or --stream.
  if (flags.stream !== undefined && flags.messages !== undefined) {
    throw new UsageError("--messages is for ping-pong; --stream runs for a time instead");
  }
  const common = { ...endpoint, timeoutMs };
  const options: LoadOptions = flags.stream === undefined
    ? {
      ...common,
      mode: "ping-pong",
      connections: flags.connections ?? 10,
      messages: flags.messages ?? 1000,
      size: flags.size ?? 64,
    }
    : {
      ...common,
      mode: "stream",
      connections: flags.connections ?? 1,
      seconds: flags.stream,
      size: flags.size ?? 65536,
    };
  if (options.connections * options.size > MAX_LOAD_BUFFER_BYTES) {
    throw new UsageError(
      `--connections × --size is over the limit of ${MAX_LOAD_BUFFER_BYTES / 1024 ** 2} MiB`,
    );
  }
  await load(options);
});

/** Interactive mode: a reader task and a writer task on one connection. */
async function interactive(conn: Deno.TcpConn, timeoutMs: number) {
  if (Deno.stdin.isTerminal()) {
    console.error(`connected to ${formatAddr(conn.remoteAddr)}: type lines, Ctrl-D to finish`);
  }
  let sent = 0;
  let received = 0;

  // Task 1, the reader: print each line the server sends, the moment it
  // arrives, until the server closes the connection (read returns null).
  const reading = (async () => {
    const lines = new LineDecoder(MAX_LINE_BYTES);
    const buffer = new Uint8Array(16 * 1024);
    let n: number | null;
    while ((n = await conn.read(buffer)) !== null) {
      received += n;
      for (const line of lines.push(buffer.subarray(0, n))) console.log(`< ${terminalSafe(line)}`);
    }
    const last = lines.end(); // a last line without LF
    if (last !== undefined) console.log(`< ${terminalSafe(last)}`);
  })();

  // Task 2, the writer: send what stdin gives us as soon as it gives it (a
  // terminal gives one line per Enter), then half-close: "nothing more".
  const writing = (async () => {
    for await (const chunk of Deno.stdin.readable) {
      await writeAll(conn, chunk);
      sent += chunk.length;
    }
    await conn.closeWrite();
  })();

  // TODO(exercise): whichever task finishes first decides what comes next.
  // - Race the two tasks (Promise.race). If the reader ends first, the server has closed
  //   while stdin is still open: print `the server closed the connection (we sent SENT
  //   bytes, got RECEIVED)` and exit at once, Deno.exit(0) (the writer may wait for ever
  //   for a line that will never matter).
  // - If the writer ends first (stdin ended, it half-closed), keep reading, but for at
  //   most timeoutMs: a timer that closes the connection makes the pending read fail at
  //   once. Turn that failure into a TimeoutError `timed out after S s waiting for the
  //   server to close the connection` (any other error: throw it on), and clear the timer
  //   however it ends. Then print `sent SENT bytes, got RECEIVED bytes, the server closed
  //   the connection`.
  // Traps: waiting for the writer before the reader (a server's goodbye goes unseen
  // while stdin stays open); waiting for ever after the half-close; a timer left running.
  await Promise.all([reading, writing]); // a placeholder: waits for both, however long (replace it)
}

/** Load mode: run lib/load.ts, show progress on a terminal, print the summary. */
async function load(options: LoadOptions) {
  const stats = new LoadStats();
  // A terminal gets a status line redrawn in place ("\r" goes back to the
  // start of the line); a file or a pipe gets only the summary.
  const live = Deno.stdout.isTerminal();
  const draw = (text: string) => Deno.stdout.writeSync(utf8Encode(`\r${text}\x1b[K`));
  const timer = live ? setInterval(() => draw(formatProgress(options, stats)), 200) : undefined;
  try {
    await runLoad(options, stats);
  } finally {
    clearInterval(timer);
    if (live) draw(""); // clear the status line
  }
  for (const line of formatReport(options, stats)) console.log(line);
  if (stats.errorCount > 0) {
    throw new LessonError(
      `${stats.errorCount} of ${options.connections} connections failed: see the errors above`,
    );
  }
}
