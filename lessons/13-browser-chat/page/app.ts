/**
 * Lesson 13: the chat page, a browser client of lesson 12's protocol.
 *
 * One WebSocket message is one protocol line, both ways, so this is the
 * terminal client of lesson 12 again, with a screen instead of a terminal:
 *
 * - we send `/name NAME`, `/users` (and `/users AFTER` for the next page of
 *   names) and `/to NAME TEXT`;
 * - every line we send gets exactly one answer (`ok ...`, `users ...`,
 *   `error ...`), in order, so a queue of what we wait for (`pending`) tells
 *   which line an answer belongs to;
 * - `from`, `joined`, `left` and `bye` can come at any time.
 *
 * The one rule for the screen: text from the network (names, messages,
 * errors) goes in with `textContent`, never `innerHTML`, so
 * `<img src=x onerror=alert(1)>` shows as those characters and runs nothing.
 *
 * The server strips the types from this file and serves it as /app.js.
 */

/** Lesson 12's longest line in bytes (room.ts `MAX_LINE_BYTES`; this page is one file). */
const MAX_LINE_BYTES = 4096;
/** The most entries kept per conversation: a page's memory is bounded too. */
const MAX_ENTRIES = 500;
/** The most names in one `users` answer (room.ts `USERS_PAGE_SIZE`). */
const USERS_PAGE_SIZE = 100;

interface Message {
  kind: "message";
  from: string;
  text: string;
  mine: boolean;
  at: Date;
  /** For our own messages: waiting for `ok sent`, delivered, or refused. */
  status?: "sending" | "sent" | "failed";
  error?: string;
}
interface Notice {
  kind: "notice";
  text: string;
  at: Date;
}
type Entry = Message | Notice;

/** What a line we sent waits for. */
type Pending =
  | { kind: "name"; name: string }
  | { kind: "users"; after?: string }
  | { kind: "to"; message: Message };

const byId = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  join: byId("join"),
  joinForm: byId<HTMLFormElement>("join-form"),
  name: byId<HTMLInputElement>("name"),
  joinError: byId("join-error"),
  joinButton: byId<HTMLButtonElement>("join-button"),
  chat: byId("chat"),
  meAvatar: byId("me-avatar"),
  meName: byId("me-name"),
  status: byId("status"),
  count: byId("count"),
  users: byId<HTMLUListElement>("users"),
  back: byId<HTMLButtonElement>("back"),
  partnerAvatar: byId("partner-avatar"),
  partnerName: byId("partner-name"),
  partnerStatus: byId("partner-status"),
  empty: byId("empty"),
  messages: byId<HTMLOListElement>("messages"),
  sendError: byId("send-error"),
  composer: byId<HTMLFormElement>("composer"),
  text: byId<HTMLInputElement>("text"),
  send: byId<HTMLButtonElement>("send"),
  notice: byId("notice"),
  noticeText: byId("notice-text"),
  reconnect: byId<HTMLButtonElement>("reconnect"),
};

// The state. Everything on screen is drawn from these.
let socket: WebSocket | undefined;
/** Our name, once the server said `ok name`. */
let me: string | undefined;
let pending: Pending[] = [];
/** Why the server is about to close (`server busy`, `bye`, `error slow-reader`). */
let closing: string | undefined;
const online = new Set<string>();
/** How many users the room has (from `users TOTAL ...`, then joined and left). */
let roomSize = 0;
/** The last name of a full page of names, while more may follow: `/users` it for the next. */
let nextPageAfter: string | undefined;
const conversations = new Map<string, Entry[]>();
const unread = new Map<string, number>();
/** Whose conversation is open. */
let current: string | undefined;

// ---- The connection ----

function connect(name: string): void {
  pending = [];
  closing = undefined;
  const ws = new WebSocket(
    `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
  );
  socket = ws;
  ws.onopen = () => send(`/name ${name}`, { kind: "name", name });
  ws.onmessage = (event) => {
    if (ws === socket && typeof event.data === "string") handleLine(event.data);
  };
  ws.onclose = (event) => {
    if (ws === socket) disconnected(closing ?? (event.reason || "the connection dropped"));
  };
}

function send(line: string, waiting: Pending): void {
  socket?.send(line);
  pending.push(waiting);
}

/** `"bob hi there"` → `["bob", "hi there"]`. */
function splitFirst(text: string): [string, string] {
  const space = text.indexOf(" ");
  return space === -1 ? [text, ""] : [text.slice(0, space), text.slice(space + 1)];
}

/** One line from the server (see lesson 12's protocol tables). */
function handleLine(line: string): void {
  const [kind, rest] = splitFirst(line);
  switch (kind) {
    case "from": {
      const [from, text] = splitFirst(rest);
      return receive(from, text);
    }
    case "joined":
      online.add(rest);
      roomSize++;
      noteIn(rest, `${rest} joined`);
      return render();
    case "left":
      online.delete(rest);
      roomSize = Math.max(0, roomSize - 1);
      noteIn(rest, `${rest} left`);
      return render();
    case "bye":
      closing = "the chat server said bye (it is shutting down, or you were idle)";
      return;
    case "server":
      if (line === "server busy") closing = "the chat server is full: try again in a while";
      return;
  }
  // Everything else answers the oldest line we are still waiting for.
  const waiting = pending.shift();
  if (kind === "ok" && rest.startsWith("name ")) return named(rest.slice(5));
  if (kind === "users") {
    // `users TOTAL NAME …`: one page of at most 100 names (the first, or those after `after`).
    const [count, ...names] = rest.split(" ").filter((word) => word !== "");
    if (waiting?.kind !== "users" || waiting.after === undefined) online.clear();
    if (me !== undefined) online.add(me); // here, even if not on this page
    for (const name of names) online.add(name);
    roomSize = Number(count) || 0;
    nextPageAfter = names.length >= USERS_PAGE_SIZE && online.size < roomSize
      ? names.at(-1)
      : undefined;
    return render();
  }
  if (kind === "ok" && rest.startsWith("sent ") && waiting?.kind === "to") {
    waiting.message.status = "sent";
    return render();
  }
  if (kind === "error") {
    const [code, detail] = splitFirst(rest);
    if (code === "slow-reader") {
      closing = detail;
    } else if (waiting?.kind === "name") {
      showJoin(code === "name-taken" ? `${detail}: pick another name` : detail);
    } else if (waiting?.kind === "to") {
      waiting.message.status = "failed";
      waiting.message.error = detail;
      render();
    } else {
      showSendError(detail);
    }
  }
}

function named(name: string): void {
  me = name;
  ui.joinButton.disabled = false;
  ui.notice.hidden = true;
  ui.join.hidden = true;
  ui.chat.hidden = false;
  send("/users", { kind: "users" });
  render();
  ui.text.focus();
}

function disconnected(why: string): void {
  socket = undefined;
  if (me === undefined) return showJoin(`Could not join: ${why}`);
  online.clear();
  roomSize = 0;
  nextPageAfter = undefined;
  ui.noticeText.textContent = `Disconnected: ${why}.`;
  ui.notice.hidden = false;
  ui.reconnect.disabled = false;
  render();
}

// ---- Conversations ----

function entries(name: string): Entry[] {
  let list = conversations.get(name);
  if (!list) conversations.set(name, list = []);
  return list;
}

function add(name: string, entry: Entry): void {
  const list = entries(name);
  list.push(entry);
  if (list.length > MAX_ENTRIES) list.splice(0, list.length - MAX_ENTRIES);
}

/** A grey line in a conversation we have with `name` (if we have one). */
function noteIn(name: string, text: string): void {
  if (conversations.has(name)) add(name, { kind: "notice", text, at: new Date() });
}

function receive(from: string, text: string): void {
  add(from, { kind: "message", from, text, mine: false, at: new Date() });
  if (from !== current) unread.set(from, (unread.get(from) ?? 0) + 1);
  render();
}

function open(name: string): void {
  current = name;
  entries(name);
  unread.delete(name);
  ui.chat.classList.add("talking"); // on a phone: the conversation replaces the list
  ui.sendError.hidden = true;
  render();
  ui.text.focus();
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (current === undefined || text.trim() === "") return;
  const line = `/to ${current} ${text}`;
  const bytes = new TextEncoder().encode(line).length;
  // Checked here so that the gateway never has to refuse our line.
  if (bytes > MAX_LINE_BYTES) {
    return showSendError(
      `That is too long: ${bytes} bytes, and a line is at most ${MAX_LINE_BYTES}.`,
    );
  }
  if (socket?.readyState !== WebSocket.OPEN) return showSendError("Not connected.");
  const message: Message = { kind: "message", from: me!, text, mine: true, at: new Date() };
  message.status = "sending";
  add(current, message);
  send(line, { kind: "to", message });
  ui.text.value = "";
  ui.sendError.hidden = true;
  render();
});

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  if (name === "") return showJoin("Type a name first.");
  ui.joinError.hidden = true;
  ui.joinButton.disabled = true;
  // Still connected after a refused name: try the next one on the same connection.
  if (socket?.readyState === WebSocket.OPEN) send(`/name ${name}`, { kind: "name", name });
  else connect(name);
});

ui.reconnect.addEventListener("click", () => {
  ui.reconnect.disabled = true;
  ui.noticeText.textContent = "Reconnecting…";
  connect(me!);
});

ui.back.addEventListener("click", () => {
  current = undefined;
  ui.chat.classList.remove("talking");
  render();
});

// ---- Drawing ----

function showJoin(error: string): void {
  ui.chat.hidden = true;
  ui.notice.hidden = true;
  ui.join.hidden = false;
  ui.joinError.textContent = error;
  ui.joinError.hidden = false;
  ui.joinButton.disabled = false;
  ui.name.focus();
  ui.name.select();
}

function showSendError(text: string): void {
  ui.sendError.textContent = text;
  ui.sendError.hidden = false;
}

/** Creates an element with a class and, optionally, its text (always as text). */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A round avatar: the first letter, on a colour that is always the same for a name. */
function paintAvatar(element: HTMLElement, name: string): void {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)!) % 360;
  element.textContent = name.slice(0, 1).toUpperCase();
  element.style.setProperty("--hue", String(hash));
}

const clock = (at: Date) => at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function render(): void {
  const connected = socket?.readyState === WebSocket.OPEN && me !== undefined;
  if (me !== undefined) {
    paintAvatar(ui.meAvatar, me);
    ui.meName.textContent = me;
  }
  ui.status.textContent = connected ? "online" : "offline";
  ui.status.classList.toggle("online", connected);

  // The people: you first, then everyone else, each with their unread count.
  const others = [...online].filter((name) => name !== me).sort();
  ui.count.textContent = String(Math.max(roomSize, online.size));
  const rows: HTMLLIElement[] = [];
  if (me !== undefined && online.has(me)) {
    const row = el("li", "user");
    row.dataset.name = me;
    const you = el("div", "user-button you");
    const avatar = el("span", "avatar");
    paintAvatar(avatar, me);
    you.append(avatar, el("span", "user-name", me), el("span", "tag", "you"));
    row.append(you);
    rows.push(row);
  }
  rows.push(...others.map((name) => {
    const row = el("li", "user");
    row.dataset.name = name;
    const button = el("button", name === current ? "user-button selected" : "user-button");
    button.type = "button";
    const avatar = el("span", "avatar");
    paintAvatar(avatar, name);
    // The name, and under it the last thing said in that conversation.
    const label = el("span", "user-label");
    label.append(el("span", "user-name", name));
    const last = conversations.get(name)?.findLast((entry) => entry.kind === "message");
    if (last?.kind === "message") {
      label.append(el("span", "preview", (last.mine ? "You: " : "") + last.text));
    }
    button.append(avatar, label);
    const count = unread.get(name);
    if (count) button.append(el("span", "badge", String(count)));
    button.addEventListener("click", () => open(name));
    row.append(button);
    return row;
  }));
  if (others.length === 0) {
    rows.push(el("li", "nobody", connected ? "Nobody else is here yet." : "Not connected."));
  }
  // A big room comes a page at a time: the next page when asked for.
  const after = nextPageAfter;
  if (connected && after !== undefined) {
    const row = el("li", "nobody", `${roomSize - online.size} more not shown. `);
    const more = el("button", "user-button", `Show ${USERS_PAGE_SIZE} more`);
    more.type = "button";
    more.addEventListener("click", () => {
      nextPageAfter = undefined; // until the answer says whether there are more
      send(`/users ${after}`, { kind: "users", after });
      render();
    });
    row.append(more);
    rows.push(row);
  }
  ui.users.replaceChildren(...rows);

  const total = [...unread.values()].reduce((sum, n) => sum + n, 0);
  document.title = total > 0 ? `(${total}) Lesson 13 chat` : "Lesson 13 chat";

  // The open conversation.
  ui.empty.hidden = current !== undefined;
  ui.messages.hidden = current === undefined;
  ui.composer.hidden = current === undefined;
  if (current === undefined) {
    ui.partnerName.textContent = "";
    ui.partnerStatus.textContent = "";
    ui.partnerAvatar.hidden = true;
    return;
  }
  const here = online.has(current);
  ui.partnerAvatar.hidden = false;
  paintAvatar(ui.partnerAvatar, current);
  ui.partnerName.textContent = current;
  ui.partnerStatus.textContent = here ? "online" : "offline";
  ui.partnerStatus.classList.toggle("online", here);
  ui.text.disabled = !connected || !here;
  ui.send.disabled = !connected || !here;
  ui.text.placeholder = here ? `Message ${current}` : `${current} is not here`;

  const atBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40;
  ui.messages.replaceChildren(...entries(current).map(drawEntry));
  if (atBottom) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function drawEntry(entry: Entry): HTMLLIElement {
  if (entry.kind === "notice") return el("li", "notice-line", `${entry.text} · ${clock(entry.at)}`);
  const item = el("li", entry.mine ? "message mine" : "message theirs");
  const bubble = el("div", "bubble");
  bubble.append(el("span", "text", entry.text));
  const status = entry.status === "sending"
    ? " · sending…"
    : entry.status === "sent"
    ? " · ✓"
    : entry.status === "failed"
    ? ` · not delivered: ${entry.error}`
    : "";
  item.append(
    bubble,
    el("div", entry.status === "failed" ? "meta failed" : "meta", clock(entry.at) + status),
  );
  return item;
}

render();
