/**
 * Lesson 11 server: a one-to-one chat, one client at a time.
 *
 * The server greets each client, then the two of you talk: what you type
 * here goes to the client, what the client sends is printed as
 * `client> ...`. Either side typing `/bye` ends the conversation, and the
 * server waits for the next client (the next one queues until then, as in
 * lesson 02). Ctrl-C tells the client `/bye` and stops.
 *
 * Your typing and the client's messages are independent: the terminal is
 * read by one loop for the whole run, the connection by the current Chat
 * (chat.ts).
 */
import {
  acceptConnections,
  closeQuietly,
  formatAddr,
  idleTimeoutFlag,
  listen,
  onShutdown,
  parseFlags,
  peerLog,
  runMain,
} from "../../lib/mod.ts";
import { readTerminalLines } from "../../lib/terminal.ts";
import { Chat, type Ending, MAX_LINE_BYTES, WELCOME } from "./chat.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 11,
    role: "server",
    summary: "Chats with one client at a time: type a line to send it, /bye to end the chat. " +
      "The next client is served when this one has gone.",
    flags: { "idle-timeout": idleTimeoutFlag(600) },
  });
  const listener = listen({ host: flags.host, port: flags.port, lesson: 11 });
  let chat: Chat | undefined;

  // Ctrl-C: say /bye to the client (if any), then stop.
  const onSignal = async () => {
    peerLog.flush();
    console.log("shutting down");
    closeQuietly(listener);
    await chat?.leave();
    Deno.exit(0);
  };
  onShutdown(onSignal);

  // The terminal, for the whole run: each line goes to whoever is connected.
  // No `await`: this loop and the accept loop below run side by side.
  (async () => {
    for await (const line of readTerminalLines(MAX_LINE_BYTES)) {
      if (chat && !chat.over) await chat.say(line);
      else console.log("(nobody is connected: not sent)");
    }
    // Standard input ended (or there is none): the server can still listen.
  })();

  // One client at a time: the loop waits for each chat to end (`await`).
  // Lines a client causes go through peerLog (at most 50 a second): a client
  // that connects and hangs up in a loop cannot flood this terminal.
  for await (const conn of acceptConnections(listener, { onError: (l) => peerLog.event(l) })) {
    peerLog.event(`connection from ${formatAddr(conn.remoteAddr)}`);
    chat = new Chat(conn, { peer: "client", idleTimeoutMs: flags["idle-timeout"] * 1000 });
    await chat.say(WELCOME);
    peerLog.event(describe(await chat.done));
    peerLog.event("waiting for the next client");
    chat = undefined;
  }
});

/** One line on how a chat ended. */
function describe(ending: Ending): string {
  switch (ending.by) {
    case "you":
      return "chat over: you said /bye";
    case "peer":
      return "chat over: the client said /bye";
    case "hangup":
      return "chat over: the client hung up without /bye";
    case "error":
      return `chat over: ${ending.reason}`;
  }
}
