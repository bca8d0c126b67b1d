/** SHA-256 as hex, shared by the lesson 06 server and client. */
import { encodeHex } from "@std/encoding/hex";

/** The SHA-256 digest of `bytes` as 64 hex digits (Web Crypto does the work). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return encodeHex(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
  ) as string;
}
