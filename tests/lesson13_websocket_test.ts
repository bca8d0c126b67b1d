/**
 * Lesson 13's WebSocket frames, byte for byte (lessons/13-browser-chat/websocket.ts):
 * the handshake's key, the server's frames, and the decoder of client frames
 * with every rule it checks on the header. The expected bytes are written out
 * here from RFC 6455, not computed by the code under test.
 */
import { assert, assertEquals } from "@std/assert";
import {
  acceptKey,
  encodeClose,
  encodeFrame,
  FrameDecoder,
  type FrameEvent,
  Opcode,
  WebSocketConnection,
} from "../lessons/13-browser-chat/websocket.ts";
import { encode, readExactly, readToEnd } from "./_helpers.ts";
import { writeAll } from "../lib/io.ts";

/** A client frame, built by hand from RFC 6455, section 5.2 (7- or 16-bit lengths). */
function clientFrame(
  opcode: number,
  payload: Uint8Array,
  { fin = true, masked = true, rsv = 0 } = {},
): Uint8Array {
  const mask = [0x37, 0xfa, 0x21, 0x3d];
  const length = payload.length < 126
    ? [payload.length]
    : [126, payload.length >> 8, payload.length & 0xff];
  return new Uint8Array([
    (fin ? 0x80 : 0) | rsv | opcode,
    (masked ? 0x80 : 0) | length[0],
    ...length.slice(1),
    ...(masked ? mask : []),
    ...payload.map((byte, i) => masked ? byte ^ mask[i % 4] : byte),
  ]);
}

/** Pushes `bytes` whole, then again one byte at a time: both must give `expected`. */
function decodes(max: number, bytes: Uint8Array, expected: FrameEvent[]): void {
  assertEquals(new FrameDecoder(max).push(bytes), expected, "in one chunk");
  const decoder = new FrameDecoder(max);
  const events = [...bytes].flatMap((byte) => decoder.push(new Uint8Array([byte])));
  assertEquals(events, expected, "byte by byte");
}

Deno.test("websocket: the handshake's accept key (RFC 6455, section 1.3)", async () => {
  assertEquals(await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("websocket: server frames are unmasked, with the shortest length", () => {
  assertEquals(
    encodeFrame(Opcode.text, encode("Hello")),
    new Uint8Array([0x81, 0x05, 72, 101, 108, 108, 111]),
  );
  assertEquals(encodeFrame(Opcode.ping, new Uint8Array(0)), new Uint8Array([0x89, 0x00]));
  const f125 = encodeFrame(Opcode.text, new Uint8Array(125));
  assertEquals([...f125.subarray(0, 2), f125.length], [0x81, 125, 127]);
  const f126 = encodeFrame(Opcode.text, new Uint8Array(126));
  assertEquals([...f126.subarray(0, 4), f126.length], [0x81, 126, 0x00, 0x7e, 130]);
  const f64k = encodeFrame(Opcode.binary, new Uint8Array(65536));
  assertEquals([...f64k.subarray(0, 10)], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
  assertEquals(f64k.length, 65536 + 10);
  // A close: the code in 2 bytes (1000 = 0x03e8), then the reason.
  assertEquals(encodeClose(1000, "bye"), new Uint8Array([0x88, 0x05, 0x03, 0xe8, 98, 121, 101]));
  // A reason is cut to 123 bytes, never in the middle of a character.
  const long = encodeClose(1001, "é".repeat(100));
  assertEquals([long[1], long.length], [2 + 122, 2 + 2 + 122]);
});

Deno.test("websocket: the decoder reads RFC 6455's masked example, in any chunks", () => {
  // Section 5.7: a single-frame masked text message "Hello".
  const hello = new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
  decodes(4096, hello, [{ kind: "text", text: "Hello" }]);
  decodes(4096, clientFrame(Opcode.text, encode("é🌮")), [{ kind: "text", text: "é🌮" }]);
  // A 16-bit length, and a binary message.
  const big = encode("x".repeat(300));
  decodes(4096, clientFrame(Opcode.text, big), [{ kind: "text", text: "x".repeat(300) }]);
  decodes(4096, clientFrame(Opcode.binary, new Uint8Array([0, 255])), [
    { kind: "binary", bytes: new Uint8Array([0, 255]) },
  ]);
  // Exactly the limit is allowed.
  decodes(8, clientFrame(Opcode.text, encode("12345678")), [{ kind: "text", text: "12345678" }]);
});

Deno.test("websocket: fragments are joined, with control frames between them", () => {
  const bytes = new Uint8Array([
    ...clientFrame(Opcode.text, encode("Hel"), { fin: false }),
    ...clientFrame(Opcode.ping, encode("?")),
    ...clientFrame(Opcode.continuation, encode("lo"), { fin: false }),
    ...clientFrame(Opcode.continuation, encode("!")),
    ...clientFrame(Opcode.pong, new Uint8Array(0)),
    ...clientFrame(Opcode.close, new Uint8Array([0x03, 0xe8, 98, 121, 101])),
  ]);
  decodes(4096, bytes, [
    { kind: "ping", payload: encode("?") },
    { kind: "text", text: "Hello!" },
    { kind: "pong" },
    { kind: "close", code: 1000, reason: "bye" },
  ]);
  decodes(4096, clientFrame(Opcode.close, new Uint8Array(0)), [{ kind: "close", reason: "" }]);
});

Deno.test("websocket: a frame over the limit is refused from its header alone (1009)", () => {
  // A text frame announcing 60 MiB (64-bit length), and not one byte of payload.
  const header = new Uint8Array([0x81, 0x80 | 127, 0, 0, 0, 0, 0x03, 0xc0, 0, 0, 1, 2, 3, 4]);
  const tooBig: FrameEvent = {
    kind: "fail",
    code: 1009,
    reason: "messages are at most 4096 bytes",
  };
  decodes(4096, header, [tooBig]);
  // One byte over, in one frame (16-bit length 4097).
  decodes(4096, new Uint8Array([0x81, 0x80 | 126, 0x10, 0x01, 1, 2, 3, 4]), [tooBig]);
  // In fragments: 3,000 bytes, then the header of 1,200 more: refused at that header.
  const decoder = new FrameDecoder(4096);
  assertEquals(
    decoder.push(clientFrame(Opcode.text, new Uint8Array(3000).fill(97), { fin: false })),
    [],
  );
  assertEquals(decoder.push(new Uint8Array([0x80, 0x80 | 126, 0x04, 0xb0, 1, 2, 3, 4])), [tooBig]);
  // After a failure, the decoder reads nothing more.
  assertEquals(decoder.push(clientFrame(Opcode.text, encode("hi"))), []);
  // Control frames are not counted in a message's size.
  decodes(4, clientFrame(Opcode.ping, encode("12345")), [{
    kind: "ping",
    payload: encode("12345"),
  }]);
});

Deno.test("websocket: frames that break the protocol are refused (1002)", () => {
  const protocol = (reason: string): FrameEvent[] => [{ kind: "fail", code: 1002, reason }];
  decodes(
    4096,
    clientFrame(Opcode.text, encode("hi"), { masked: false }),
    protocol("client frames must be masked"),
  );
  decodes(
    4096,
    clientFrame(Opcode.text, encode("hi"), { rsv: 0x40 }),
    protocol("RSV bits set: no extension was agreed"),
  );
  decodes(4096, clientFrame(0x3, encode("hi")), protocol("unknown opcode 3"));
  decodes(4096, clientFrame(0xb, encode("hi")), protocol("unknown opcode 11"));
  decodes(
    4096,
    clientFrame(Opcode.ping, new Uint8Array(126)),
    protocol("control frames are one frame of 125 bytes at most"),
  );
  decodes(
    4096,
    clientFrame(Opcode.ping, encode("a"), { fin: false }),
    protocol("control frames are one frame of 125 bytes at most"),
  );
  decodes(
    4096,
    clientFrame(Opcode.continuation, encode("a")),
    protocol("a continuation frame with no message to continue"),
  );
  decodes(
    4096,
    new Uint8Array([
      ...clientFrame(Opcode.text, encode("a"), { fin: false }),
      ...clientFrame(Opcode.text, encode("b")),
    ]),
    protocol("a new message inside a fragmented one"),
  );
  decodes(
    4096,
    clientFrame(Opcode.close, new Uint8Array([3])),
    protocol("a close code is 2 bytes"),
  );
  decodes(
    4096,
    clientFrame(Opcode.close, new Uint8Array([0x03, 0xe7])),
    protocol("bad close code 999"),
  );
  // A 64-bit length with its top bit set.
  decodes(
    4096,
    new Uint8Array([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
    protocol("bad frame length"),
  );
});

Deno.test("websocket: a text message must be UTF-8 (1007)", () => {
  decodes(4096, clientFrame(Opcode.text, new Uint8Array([0x68, 0xff])), [
    { kind: "fail", code: 1007, reason: "text messages must be UTF-8" },
  ]);
  // Cut in the middle of a character between fragments: still one valid message.
  const taco = encode("🌮");
  decodes(
    4096,
    new Uint8Array([
      ...clientFrame(Opcode.text, taco.subarray(0, 2), { fin: false }),
      ...clientFrame(Opcode.continuation, taco.subarray(2)),
    ]),
    [{ kind: "text", text: "🌮" }],
  );
  decodes(4096, clientFrame(Opcode.close, new Uint8Array([0x03, 0xe8, 0xff])), [
    { kind: "fail", code: 1007, reason: "the close reason is not UTF-8" },
  ]);
});

Deno.test("websocket: a ping every interval; a peer that answers nothing is dropped", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  listener.close();
  const ws = new WebSocketConnection(server, {
    maxMessageBytes: 4096,
    pingIntervalMs: 200,
    writeTimeoutMs: 5_000,
    closeTimeoutMs: 1_000,
  });
  const started = Date.now();
  try {
    // The first ping, then (we answer it with a pong) the second one.
    assertEquals([...await readExactly(client, 2)], [0x89, 0x00]);
    await client.write(new Uint8Array([0x8a, 0x80, 1, 2, 3, 4]));
    assertEquals([...await readExactly(client, 2)], [0x89, 0x00]);
    // Now we answer nothing: at the next ping's time, the server hangs up.
    assertEquals(await readToEnd(client, 5_000), new Uint8Array(0));
    assertEquals(await ws.closed, { code: 1006, reason: "" });
    const ms = Date.now() - started;
    assert(ms >= 500 && ms < 4_000, `dropped after ${ms} ms`);
  } finally {
    client.close();
    await ws.closed;
  }
});

Deno.test("websocket: pings from a peer that reads nothing queue one pong, not one each", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  listener.close();
  const ws = new WebSocketConnection(server, {
    maxMessageBytes: 4096,
    pingIntervalMs: 60_000,
    writeTimeoutMs: 60_000,
    closeTimeoutMs: 1_000,
  });
  try {
    // 20 MiB of pings of 125 bytes each; the client never reads the pongs.
    const ping = clientFrame(Opcode.ping, new Uint8Array(125).fill(1));
    const batch = new Uint8Array(ping.length * 1000);
    for (let i = 0; i < 1000; i++) batch.set(ping, i * ping.length);
    for (let sent = 0; sent < 20 * 1024 * 1024; sent += batch.length) {
      await writeAll(client, batch);
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // let the server read it all
    // The kernel's buffers took a few MB of pongs; the rest are replaced, not queued.
    assert(ws.bufferedAmount <= 2 * 127, `${ws.bufferedAmount} bytes queued`);
  } finally {
    client.close();
    await ws.closed;
  }
});
