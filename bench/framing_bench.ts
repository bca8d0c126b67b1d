/**
 * How fast can each framing be decoded?
 *
 * For each framing (lines, length-prefixed frames, lesson 07's messages) and
 * two message sizes (64 B and 64 KiB on the wire), we encode 16 MiB worth
 * of messages once, then decode them in 64 KiB chunks, as `readChunks`
 * would deliver them from a fast connection. No network is involved: this
 * measures the decoders alone, so it is an upper bound for a real server.
 *
 * 64 KiB messages in 64 KiB chunks arrive one per chunk, whole, which a
 * real connection rarely does; the "cut" rows shift the chunks by 32 KiB so
 * that every message is split across two chunks, and measure the code that
 * joins the pieces.
 *
 * Run: `deno bench --allow-read=. bench/`
 *
 * `deno bench` reports the time per iteration (one 16 MiB buffer); at the
 * end this file prints the same results as MB/s (1 MB = 10^6 bytes) and
 * messages per second, the numbers quoted in the lesson READMEs.
 *
 * @module
 */

import { crc32 } from "../lib/crc32.ts";
import { encodeFrame, FrameDecoder } from "../lib/frames.ts";
import { LineDecoder } from "../lib/lines.ts";
import { encodeMessage, HEADER_BYTES, MessageDecoder } from "../lib/message.ts";
import { utf8Encode } from "../lib/text.ts";

const TOTAL_BYTES = 16 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
const SIZES = [64, 64 * 1024]; // bytes per message on the wire, header included

/** Repeats one encoded message to fill about TOTAL_BYTES. */
function repeat(message: Uint8Array): { buffer: Uint8Array; count: number } {
  const count = Math.floor(TOTAL_BYTES / message.length);
  const buffer = new Uint8Array(count * message.length);
  for (let i = 0; i < count; i++) buffer.set(message, i * message.length);
  return { buffer, count };
}

/** One message of exactly `size` bytes on the wire, for each framing. */
const framings = {
  lines: (size: number) => utf8Encode("x".repeat(size - 1) + "\n"),
  frames: (size: number) => encodeFrame(new Uint8Array(size - 4).fill(0x78)),
  messages: (size: number) => {
    // {"id":0,"text":"xxx..."} is 18 bytes plus the text.
    const message = encodeMessage(1, { id: 0, text: "x".repeat(size - HEADER_BYTES - 18) });
    if (message.length !== size) throw new Error("bad message size");
    return message;
  },
};

/** `buffer` in 64 KiB chunks, the first one `first` bytes long. */
function* chunks(buffer: Uint8Array, first = CHUNK_BYTES): Generator<Uint8Array> {
  yield buffer.subarray(0, first);
  for (let i = first; i < buffer.length; i += CHUNK_BYTES) {
    yield buffer.subarray(i, i + CHUNK_BYTES);
  }
}

/** Decodes `buffer` in chunks; returns how many messages came out. */
const decoders: Record<keyof typeof framings, (buffer: Uint8Array, first?: number) => number> = {
  lines(buffer, first) {
    const decoder = new LineDecoder();
    let count = 0;
    for (const chunk of chunks(buffer, first)) count += decoder.push(chunk).length;
    if (decoder.end() !== undefined) count++;
    return count;
  },
  frames(buffer, first) {
    const decoder = new FrameDecoder();
    let count = 0;
    for (const chunk of chunks(buffer, first)) count += decoder.push(chunk).length;
    decoder.end();
    return count;
  },
  messages(buffer, first) {
    const decoder = new MessageDecoder();
    let count = 0;
    for (const chunk of chunks(buffer, first)) count += decoder.push(chunk).length;
    if (decoder.end() !== undefined) throw new Error("truncated");
    return count;
  },
};

/** Our own timings, for the table printed at the end. */
const results: { name: string; bytes: number; count: number; ms: number; runs: number }[] = [];

function measure(name: string, group: string, bytes: number, count: number, fn: () => number) {
  const result = { name, bytes, count, ms: 0, runs: 0 };
  results.push(result);
  if (fn() !== count) throw new Error(`${name}: wrong message count`); // decodes correctly
  Deno.bench({
    name,
    group,
    baseline: name.startsWith("frames"),
    fn() {
      const start = performance.now();
      fn();
      result.ms += performance.now() - start;
      result.runs++;
    },
  });
}

for (const size of SIZES) {
  const label = size < 1024 ? `${size} B` : `${size / 1024} KiB`;
  for (const [framing, encode] of Object.entries(framings)) {
    const { buffer, count } = repeat(encode(size));
    const decode = decoders[framing as keyof typeof framings];
    const group = `decode ${label} messages`;
    measure(`${framing} ${label}`, group, buffer.length, count, () => decode(buffer));
    if (size < CHUNK_BYTES) continue;
    measure(
      `${framing} ${label} cut`,
      group,
      buffer.length,
      count,
      () => decode(buffer, CHUNK_BYTES / 2),
    );
  }
}

// For comparison: the CRC-32 every message body needs.
const crcInput = new Uint8Array(TOTAL_BYTES).fill(0x78);
measure("crc32 (reference)", "crc32", crcInput.length, 0, () => (crc32(crcInput), 0));

globalThis.addEventListener("unload", () => {
  const rows = results.filter((r) => r.runs > 0).map((r) => {
    const seconds = r.ms / r.runs / 1000;
    return {
      name: r.name,
      "MB/s": Math.round(r.bytes / seconds / 1e6),
      "messages/s": r.count ? Math.round(r.count / seconds).toLocaleString("en-US") : "",
    };
  });
  if (rows.length > 0) console.table(rows);
});
