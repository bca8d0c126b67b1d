/**
 * Lesson 13's frame headers on the wire: the payload length in its three
 * sizes (7, 16 and 64 bits), where the mask starts, and the limit checked on
 * the header before any payload is buffered. Raw TCP clients send frames
 * written out here byte by byte from RFC 6455 (section 5.2) to the real
 * server, and read back what it answers. These checks also judge exercise 13
 * (exercises/13-browser-chat/websocket.ts): `deno task exercise 13`.
 */
import { assert, assertEquals } from "@std/assert";
import { test } from "./_checks.ts";
import { readWithTimeout, writeAll } from "../lib/io.ts";
import { describeNetError, TimeoutError } from "../lib/mod.ts";
import { closeRaw, decode, encode, LessonServer, rawConnect, sleep } from "./_helpers.ts";

const MASK = [0x37, 0xfa, 0x21, 0x3d];
const masked = (payload: Uint8Array) => payload.map((byte, i) => byte ^ MASK[i % 4]);

/** A masked client text frame with a 7-bit length (under 126 bytes). */
function short(text: string): Uint8Array {
  const payload = encode(text);
  assert(payload.length < 126);
  return new Uint8Array([0x81, 0x80 | payload.length, ...MASK, ...masked(payload)]);
}

/** A masked client text frame with a 16-bit length (126, then 2 bytes, big-endian). */
function medium(text: string, fin = true): Uint8Array {
  const payload = encode(text);
  assert(payload.length >= 126 && payload.length < 65536);
  return new Uint8Array([
    fin ? 0x81 : 0x01,
    0x80 | 126,
    payload.length >> 8,
    payload.length & 0xff,
    ...MASK,
    ...masked(payload),
  ]);
}

/**
 * What the server sent, frame by frame (its frames are never masked), until
 * it closed the connection, until `count` frames came, or until 3 s of
 * silence: `text: ...`, `close CODE: REASON`, and `EOF` if it closed.
 */
async function answers(conn: Deno.Conn, count = Infinity): Promise<string[]> {
  const out: string[] = [];
  let bytes = new Uint8Array(0);
  const buffer = new Uint8Array(16 * 1024);
  while (out.length < count) {
    // A whole frame: describe it. (The server's answers here are short: 7- or 16-bit lengths.)
    const code = bytes[1] & 0x7f;
    const start = code === 126 ? 4 : 2;
    const length = code === 126 ? (bytes[2] << 8) | bytes[3] : code;
    if (bytes.length >= 2 && bytes.length >= start + length) {
      const payload = bytes.slice(start, start + length);
      const opcode = bytes[0] & 0x0f;
      bytes = bytes.slice(start + length);
      out.push(
        opcode === 0x1
          ? `text: ${decode(payload)}`
          : opcode === 0x8
          ? `close ${(payload[0] << 8) | payload[1]}: ${decode(payload.subarray(2))}`
          : `opcode ${opcode}: ${decode(payload)}`,
      );
      continue;
    }
    let n: number | null;
    try {
      n = await readWithTimeout(conn, buffer, 3_000, "the server");
    } catch (error) {
      // Silence, or a reset: either way, what came so far is the answer.
      out.push(
        error instanceof TimeoutError ? "(nothing more for 3 s)" : `(${describeNetError(error)})`,
      );
      break;
    }
    if (n === null) {
      out.push(bytes.length > 0 ? `EOF, after ${bytes.length} bytes of a frame` : "EOF");
      break;
    }
    const more = new Uint8Array(bytes.length + n);
    more.set(bytes);
    more.set(buffer.subarray(0, n), bytes.length);
    bytes = more;
  }
  return out;
}

/** Opens a WebSocket by hand (the page's own Origin); returns the connection after the `101`. */
async function open(http: number): Promise<Deno.TcpConn> {
  const conn = await rawConnect(http);
  const request = [
    "GET /ws HTTP/1.1",
    `Host: 127.0.0.1:${http}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    `Origin: http://127.0.0.1:${http}`,
  ];
  await writeAll(conn, encode(request.join("\r\n") + "\r\n\r\n"));
  // The answer's head, byte by byte, so no frame after it is consumed.
  let head = "";
  const byte = new Uint8Array(1);
  while (!head.endsWith("\r\n\r\n") && head.length < 4096) {
    if (await readWithTimeout(conn, byte, 10_000, "the server") === null) break;
    head += decode(byte);
  }
  assertEquals(head.split("\r\n")[0], "HTTP/1.1 101 Switching Protocols");
  return conn;
}

/** The answer to a message over the limit: the error line, close 1009, and the server's FIN. */
const TOO_BIG = [
  "text: error line-too-long lines are at most 4096 bytes",
  "close 1009: messages are at most 4096 bytes",
  "EOF",
];

test("lesson 13: frame headers: lengths in 7, 16 and 64 bits, the limit on the header", async (t) => {
  await using server = await LessonServer.start("lesson13-server");
  assert(
    await server.waitForLine(/^page at http:\/\/127\.0\.0\.1:\d+\/$/),
    server.lines.join("\n"),
  );
  const http = Number(
    server.lines.find((line) => line.startsWith("page at "))!.match(/:(\d+)\/$/)![1],
  );
  /** Opens a WebSocket, sends `frames` (one write each), returns the answers, closes. */
  const exchange = async (frames: Uint8Array[], count?: number) => {
    const conn = await open(http);
    try {
      for (const frame of frames) await writeAll(conn, frame);
      return await answers(conn, count);
    } finally {
      closeRaw(conn);
    }
  };

  /** A message the chat server echoes: its answer names the unknown command, whole. */
  const unknown = (bytes: number, letter: string) => "/" + letter.repeat(bytes - 1);
  const answer = (command: string) => `text: error unknown-command ${command} (try /help)`;
  let users = 0;
  /** Opens a WebSocket, joins with a new name, sends `frames`: the answers after `ok name`. */
  const named = async (frames: Uint8Array[], count?: number) => {
    const name = `u${++users}`;
    const [ok, ...rest] = await exchange(
      [short(`/name ${name}`), ...frames],
      count === undefined ? undefined : count + 1,
    );
    assertEquals(ok, `text: ok name ${name}`);
    return rest;
  };

  await t.step("a 7-bit length: the mask after 2 bytes, the text unmasked", async () => {
    assertEquals(await exchange([short("/name ann")], 1), ["text: ok name ann"]);
  });

  await t.step("a 16-bit length (126): 2 more bytes, big-endian, then the mask", async () => {
    // 3,000 bytes: 0x0b 0xb8. Read as little-endian it would be 47,115 (over the limit).
    assertEquals(await named([medium(unknown(3000, "a"))], 1), [answer(unknown(3000, "a"))]);
    // 256 bytes: 0x01 0x00 (the low byte alone would say 0).
    assertEquals(await named([medium(unknown(256, "b"))], 1), [answer(unknown(256, "b"))]);
  });

  await t.step("a header that comes one byte at a time", async () => {
    const frame = medium(unknown(300, "c"));
    const conn = await open(http);
    try {
      await writeAll(conn, short("/name solo"));
      assertEquals(await answers(conn, 1), ["text: ok name solo"]);
      for (let i = 0; i < 8; i++) {
        await writeAll(conn, frame.subarray(i, i + 1));
        await sleep(5);
      }
      await writeAll(conn, frame.subarray(8));
      assertEquals(await answers(conn, 1), [answer(unknown(300, "c"))]);
    } finally {
      closeRaw(conn);
    }
  });

  await t.step("4,096 bytes passes; 4,097 gets 1009 from the header alone", async () => {
    assertEquals(await named([medium(unknown(4096, "d"))], 1), [answer(unknown(4096, "d"))]);
    // The header of 4,097 bytes and its mask, no payload: refused at once.
    assertEquals(await named([medium(unknown(4097, "d")).subarray(0, 8)]), TOO_BIG);
  });

  await t.step("a 64-bit length (127): 60 MiB announced gets 1009, no payload sent", async () => {
    // FIN + text; MASK + 127; 8 bytes of length, 0x03c00000 = 60 MiB; the mask. No payload.
    const header = [0x81, 0xff, 0, 0, 0, 0, 0x03, 0xc0, 0x00, 0x00, ...MASK];
    assertEquals(await named([new Uint8Array(header)]), TOO_BIG);
  });

  await t.step("a 64-bit length counts all 64 bits: 4 GiB + 9 is not 9", async () => {
    // 0x00000001_00000009: the low 32 bits alone say 9. Then 9 bytes of payload.
    const header = [0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 9, ...MASK];
    assertEquals(
      await named([new Uint8Array([...header, ...masked(encode("/users me"))])]),
      TOO_BIG,
    );
  });

  await t.step("a 64-bit length with its top bit set is refused (1002)", async () => {
    const header = [0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 9, ...MASK];
    assertEquals(await named([new Uint8Array(header)]), ["close 1002: bad frame length", "EOF"]);
  });

  await t.step("fragments count together: 3,000 bytes, then a header of 1,200 more", async () => {
    const first = medium(unknown(3000, "e"), false); // FIN clear
    const rest = medium("f".repeat(1200)).subarray(0, 8);
    rest[0] = 0x80; // FIN + continuation
    assertEquals(await named([first, rest]), TOO_BIG);
  });
});
