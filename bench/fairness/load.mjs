/**
 * The load of bench/fairness.ts, in plain `node:net` run by Node (which
 * serves its own sockets fairly), so the load cannot be what makes a server
 * look unfair. CONNECTIONS connections each send a request, wait for its
 * answer and send the next, from START (a `Date.now()` time, so that several
 * of these processes start together) for SECONDS. Then it prints one JSON
 * line: each connection's round trips, and the latencies as a histogram in
 * 0.1 ms steps.
 *
 * PROTOCOL `echo` (the default): 64 bytes, answered by the same 64 bytes.
 * `chat` (lesson 12): each connection takes a name, then sends itself
 * `/to NAME x` and waits for `ok sent NAME`.
 *
 * Usage: node load.mjs PORT CONNECTIONS SECONDS START [PROTOCOL]
 *
 * @module
 */
import net from "node:net";
import process from "node:process";

const [port, connections, seconds, start] = process.argv.slice(2, 6).map(Number);
const chat = process.argv[6] === "chat";
const end = start + seconds * 1000;
const histogram = new Map(); // latency in 0.1 ms steps → how many
const replies = new Array(connections).fill(0);
const starts = [];
let finished = 0;

/** One connection: `request` is what it sends, `answered(text)` whether text completes the answer. */
function open(id) {
  const name = `u${process.pid}x${id}`;
  const request = Buffer.from(chat ? `/to ${name} x\n` : "x".repeat(64));
  const answer = chat ? `ok sent ${name}\n` : "x".repeat(64);
  const socket = net.connect(port, "127.0.0.1");
  socket.setEncoding("latin1");
  let pending = "";
  let sentAt = 0;
  let ready = !chat;
  const send = () => {
    sentAt = performance.now();
    socket.write(request);
  };
  const started = () => {
    starts.push(send);
    if (starts.length < connections) return;
    setTimeout(() => starts.forEach((send) => send()), Math.max(0, start - Date.now()));
  };
  socket.on("data", (text) => {
    pending += text;
    if (!ready) { // chat: wait for our name, ignore everyone else's `joined`
      const at = pending.indexOf(`ok name ${name}\n`);
      if (at < 0) return void (pending = pending.slice(pending.lastIndexOf("\n") + 1));
      ready = true;
      pending = "";
      return started();
    }
    const at = pending.indexOf(answer);
    if (at < 0) {
      if (chat) pending = pending.slice(pending.lastIndexOf("\n") + 1);
      return;
    }
    pending = pending.slice(at + answer.length);
    const step = Math.round((performance.now() - sentAt) * 10);
    histogram.set(step, (histogram.get(step) ?? 0) + 1);
    replies[id]++;
    if (Date.now() < end) return send();
    socket.destroy();
    if (++finished === connections) {
      console.log(JSON.stringify({ replies, histogram: [...histogram] }));
    }
  });
  socket.on("connect", () => chat ? socket.write(`/name ${name}\n`) : started());
  socket.on("error", (error) => {
    console.error(`connection ${id + 1}: ${error.message}`);
    process.exit(1);
  });
}

for (let id = 0; id < connections; id++) open(id);
