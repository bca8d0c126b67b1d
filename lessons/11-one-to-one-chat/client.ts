/**
 * Lesson 11 client: the other end of the one-to-one chat.
 *
 * It connects, waits for the server's greeting (the server talks to one
 * client at a time, so the greeting also means "your turn": until then you
 * wait in the server's queue, at most --timeout seconds), then sends every
 * line you type while printing what the server sends as `server> ...`, its
 * control characters made visible. `/bye` from either side ends the chat;
 * so does Ctrl-C.
 *
 * When standard input ends (piped input, or Ctrl-D), the client keeps
 * showing what the server sends for `--wait` seconds, so replies to the
 * last lines still arrive, then says `/bye`.
 */
import { connect, LessonError, parseFlags, runMain, timeoutFlag } from "../../lib/mod.ts";
import { readTerminalLines } from "../../lib/terminal.ts";
import { Chat, MAX_LINE_BYTES } from "./chat.ts";

/** If the greeting has not come after this long, say why we are waiting. */
const QUEUED_NOTICE_MS = 2_000;

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 11,
    role: "client",
    summary: "Chats with the lesson 11 server: type a line to send it, /bye to leave.",
    flags: {
      wait: {
        type: "number",
        description: "when standard input ends, keep listening this long, then say /bye",
        default: 1,
        min: 0,
        max: 3600,
        integer: false,
        value: "SECONDS",
      },
      timeout: {
        ...timeoutFlag(60),
        description: "give up if the server's greeting (your turn) has not come within this long",
      },
    },
    epilog: 'Example: echo "Hello" | deno task lesson11-client --wait 2',
  });
  const conn = await connect({ host: flags.host, port: flags.port, lesson: 11 });

  // The first line from the server is its greeting: start sending after it.
  let greeted: () => void = () => {};
  const greeting = new Promise<void>((resolve) => greeted = resolve);
  const chat = new Chat(conn, {
    peer: "server",
    print: (line) => {
      console.log(line);
      greeted();
    },
  });
  const notice = setTimeout(
    () =>
      console.log(
        "(no greeting yet: the server is probably talking to another client, and you are " +
          `waiting in its queue; giving up after ${flags.timeout} s)`,
      ),
    QUEUED_NOTICE_MS,
  );
  // Waiting in the queue is a wait like any other: it has a time limit.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) =>
    timer = setTimeout(() => resolve("late"), flags.timeout * 1000)
  );
  const first = await Promise.race([greeting, chat.done, late]);
  clearTimeout(notice);
  clearTimeout(timer);
  if (first === "late") {
    throw new LessonError(
      `no greeting from the server in ${flags.timeout} s: it is still talking to another ` +
        "client (try again later, or wait longer with --timeout)",
    );
  }

  // Ctrl-C: say /bye, then stop.
  Deno.addSignalListener("SIGINT", () => chat.leave());

  // Your typing, in a loop of its own (no `await`): the chat prints the
  // server's lines meanwhile.
  (async () => {
    for await (const line of readTerminalLines(MAX_LINE_BYTES)) {
      if (chat.over) return;
      await chat.say(line);
    }
    if (chat.over) return;
    // Standard input ended: give the server's answers time to arrive, then leave.
    console.log(`(end of input: listening ${flags.wait} s more, then /bye)`);
    const timer = setTimeout(() => chat.leave(), flags.wait * 1000);
    await chat.done;
    clearTimeout(timer);
  })();

  const ending = await chat.done;
  switch (ending.by) {
    case "you":
      console.log("chat over: you said /bye");
      break;
    case "peer":
      console.log("chat over: the server said /bye");
      break;
    case "hangup":
      throw new LessonError("chat over: the server hung up without /bye");
    case "error":
      throw new LessonError(`chat over: ${ending.reason}`);
  }
});
// The terminal loop may still be waiting for a line nobody will type.
Deno.exit(0);
