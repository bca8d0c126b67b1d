/**
 * Lesson 12 client: a terminal for the multi-user chat.
 *
 * It turns what you type into protocol lines (`/name`, `/users`, `/chat`,
 * `/to`, plain text, `/bye`) and the server's lines into friendly output
 * (`bob: hi`, `* carol joined`). Two loops run side by side, as in lesson
 * 11: the terminal and the connection.
 *
 * Every line we send gets exactly one answer (`ok ...`, `users ...`,
 * `error ...`, or `bye`), in order, so the client keeps the lines it still
 * waits for in a queue. When standard input ends, it waits (at most
 * --timeout seconds) for the answers to everything it sent, then says
 * `/bye`; lines that got no answer are named, and the exit code is 1.
 *
 * Everything the server sends is printed through `terminalSafe`: a message
 * with a CR or an ESC sequence in it shows those as `\x0d`, `\x1b`, instead
 * of rewriting the screen. Lessons 13 and 20 run this same client against
 * their servers: they import `main`.
 */
import {
  closeQuietly,
  connect,
  describeNetError,
  LessonError,
  LineDecoder,
  parseFlags,
  runMain,
  taskName,
  terminalSafe,
  timeoutFlag,
  utf8Encode,
  writeAllWithTimeout,
} from "../../lib/mod.ts";
import { readTerminalLines } from "../../lib/terminal.ts";
import { MAX_LINE_BYTES, MAX_SERVER_LINE_BYTES, NAME_PATTERN, USERS_PAGE_SIZE } from "./room.ts";

/**
 * The longest server line we accept: the protocol's longest line (a
 * `from NAME TEXT`, 4,134 bytes), with a margin. A `users` answer is one
 * page of at most 100 names, so no line grows with the room.
 */
const SERVER_LINE_LIMIT = 2 * MAX_SERVER_LINE_BYTES;

const HELP = [
  "* commands:",
  "*   /users [AFTER]    who is here, 100 at a time: /users LAST shows the next ones",
  "*   /chat NAME        send your plain lines to NAME",
  "*   /to NAME TEXT     send one message to NAME",
  "*   /bye              leave",
  "*   anything else goes to the person you chose with /chat",
];

/** Runs the client; `lesson` sets the default port and task name (lesson 13 runs it with 13). */
export async function main(lesson: number, args: string[] = Deno.args): Promise<void> {
  await runMain(() => chat(lesson, args));
  // The terminal loop may still be waiting for a line nobody will type.
  Deno.exit(0);
}

async function chat(lesson: number, args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    lesson,
    role: "client",
    summary: "Joins the lesson 12 chat: asks for a name (or --name), then type /help.",
    flags: {
      name: { type: "string", description: "your name (otherwise the client asks)", value: "NAME" },
      timeout: timeoutFlag(10),
    },
    epilog: `Example: echo "/users" | deno task ${taskName(lesson, "client")} --name alice`,
  });
  if (flags.name !== undefined && !NAME_PATTERN.test(flags.name)) {
    throw new LessonError("--name must be 1-32 letters, digits, _ or -", 2);
  }
  const timeoutMs = flags.timeout * 1000;
  const conn = await connect({ host: flags.host, port: flags.port, lesson });

  /** Lines sent that have not been answered yet, oldest first (answers come in order). */
  const unanswered: string[] = [];
  let named = false;
  let saidBye = false;
  /** Why we gave up on the server ourselves (it did not answer in time). */
  let gaveUp: string | undefined;
  /** Wakes whoever waits for an answer (the name, all answers, bye). */
  let onAnswer: () => void = () => {};
  const answered = () => new Promise<void>((resolve) => onAnswer = resolve);

  // Writes go one after another; a server that does not read for 10 s is given up.
  let writing = Promise.resolve();
  const send = (line: string) => {
    unanswered.push(line);
    writing = writing.then(() =>
      writeAllWithTimeout(conn, utf8Encode(line + "\n"), 10_000, "the server")
    ).catch(() => closeQuietly(conn)); // the read loop reports it
    return writing;
  };

  /** Prints one server line the friendly way; returns true for `bye`. */
  const show = (received: string): boolean => {
    // The server's text (names, messages, errors) is shown, never obeyed.
    const line = terminalSafe(received);
    const [kind, ...words] = line.split(" ");
    const rest = words.slice(1).join(" ");
    switch (kind) {
      case "from":
        console.log(`${words[0]}: ${rest}`);
        return false;
      case "joined":
      case "left":
        console.log(`* ${words[0]} ${kind}`);
        return false;
      case "bye":
        console.log("* bye");
        return true;
    }
    // Everything else answers one line of ours: the oldest one waiting.
    const question = unanswered.shift();
    if (kind === "ok" && words[0] === "name") {
      named = true;
      console.log(`* you are ${rest}: /help lists the commands`);
    } else if (kind === "ok" && words[0] === "chat") {
      console.log(`* talking to ${rest}: plain lines go to ${rest}`);
    } else if (kind === "users") {
      console.log(describeUsers(words, question));
    } else if (kind === "error" && !named && /^(name-taken|bad-name)$/.test(words[0])) {
      console.log(`* ${rest}: type another name`);
    } else if (kind === "error") {
      console.log(`* ${words[0] === "slow-reader" ? "cut off" : "error"}: ${rest}`);
    } else if (kind !== "ok") {
      console.log(`* the server said: ${line}`);
    }
    onAnswer();
    return false;
  };

  // The connection: print everything the server says until bye or EOF.
  const reading = (async (): Promise<"bye" | string> => {
    const decoder = new LineDecoder(SERVER_LINE_LIMIT);
    const buffer = new Uint8Array(16 * 1024);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) return "the server closed the connection";
        for (const line of decoder.push(buffer.subarray(0, n))) if (show(line)) return "bye";
        if (decoder.error) return `the server broke the protocol: ${decoder.error.message}`;
      }
    } catch (error) {
      const reason = describeNetError(error);
      if (reason === undefined) throw error;
      return `lost the connection to the server: ${reason}`;
    } finally {
      onAnswer();
      closeQuietly(conn);
    }
  })();
  let over = false;
  reading.then(() => over = true);

  /** Says /bye once, then waits (bounded) for the server's bye. */
  const leave = async () => {
    if (!saidBye && !over) {
      saidBye = true;
      await send("/bye");
    }
    const timer = setTimeout(() => closeQuietly(conn), timeoutMs);
    await reading;
    clearTimeout(timer);
  };
  Deno.addSignalListener("SIGINT", leave);

  /**
   * Sends `/name NAME` and waits for its answer, at most --timeout seconds:
   * a server that never answers is given up (closing the connection ends
   * the read loop).
   */
  const askName = async (name: string) => {
    const reply = answered();
    await send(`/name ${name}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) =>
      timer = setTimeout(() => {
        gaveUp = `the server did not answer /name in ${flags.timeout} s`;
        closeQuietly(conn);
        reading.finally(resolve); // so `over` is set when we go on
      }, timeoutMs)
    );
    await Promise.race([reply, late]);
    clearTimeout(timer);
  };

  // The terminal, side by side with the connection.
  (async () => {
    if (flags.name !== undefined) await askName(flags.name);
    if (!named && !over) console.log("* your name? (1-32 letters, digits, _ or -)");
    for await (const line of readTerminalLines(MAX_LINE_BYTES)) {
      if (over || saidBye) return;
      if (!named) {
        await askName(line.trim());
        continue;
      }
      if (line === "/help") console.log(HELP.join("\n"));
      else if (line === "/bye") return await leave();
      else await send(line);
    }
    if (over || saidBye) return;
    // Standard input ended: wait for the answers to what we sent, then leave.
    const deadline = Date.now() + timeoutMs;
    while (unanswered.length > 0 && !over && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        answered(),
        new Promise((resolve) => timer = setTimeout(resolve, deadline - Date.now())),
      ]);
      clearTimeout(timer);
    }
    if (unanswered.length > 0 && !over) {
      // The server is not answering: say so, and do not wait for a bye either.
      gaveUp = `${noAnswerTo(unanswered)} (waited ${flags.timeout} s)`;
      await send("/bye");
      closeQuietly(conn);
      return;
    }
    await leave();
  })();

  const ending = await reading;
  // What we sent and never got an answer to (our /bye's answer is the bye itself).
  const missed = unanswered.filter((line) => line !== "/bye");
  if (gaveUp !== undefined) throw new LessonError(`* ${gaveUp}`);
  if (ending !== "bye") {
    throw new LessonError(`* ${ending}${missed.length > 0 ? `; ${noAnswerTo(missed)}` : ""}`);
  }
  if (!named) throw new LessonError("* left without a name: none was accepted");
  if (missed.length > 0) throw new LessonError(`* the server said bye; ${noAnswerTo(missed)}`);
  Deno.removeSignalListener("SIGINT", leave);
}

/**
 * `* here (TOTAL): a, b, c` for a `users TOTAL NAME …` page, and how to get
 * the next page if there is one. `question` is the line it answers:
 * `/users`, or `/users AFTER` for a later page.
 */
function describeUsers(words: string[], question = "/users"): string {
  const [total, ...names] = words;
  const after = question.startsWith("/users ") ? question.slice("/users ".length) : "";
  const shown = names.length > 0 ? names.join(", ") : "(nobody more)";
  const next = `/users ${names.at(-1)}`;
  if (after === "") {
    const more = Number(total) - names.length;
    return `* here (${total}): ${shown}${more > 0 ? ` (${more} more: ${next})` : ""}`;
  }
  // A later page: a full one may have more after it.
  const more = names.length >= USERS_PAGE_SIZE ? ` (more: ${next})` : "";
  return `* here (${total}), after ${after}: ${shown}${more}`;
}

/** `no answer to: /users, /to bob hi`: at most 5 lines, each shortened, made safe to print. */
function noAnswerTo(lines: string[]): string {
  const shorten = (line: string) => {
    const chars = [...terminalSafe(line)];
    return chars.length > 40 ? `${chars.slice(0, 40).join("")}…` : chars.join("");
  };
  const listed = lines.slice(0, 5).map(shorten).join(", ");
  return `no answer to: ${listed}${lines.length > 5 ? `, and ${lines.length - 5} more` : ""}`;
}

if (import.meta.main) await main(12);
