/**
 * Address families, as a person says them: IPv4, IPv6, or an IPv4 address
 * wearing IPv6 clothes (`::ffff:127.0.0.1`, "IPv4-mapped"), which is how a
 * dual-stack socket (`--host ::`) sees an IPv4 client.
 */
import { formatAddr } from "../../lib/mod.ts";

/** The family of an IP address as text: `IPv4`, `IPv6` or `IPv4-mapped`. */
export function familyOf(address: string): "IPv4" | "IPv6" | "IPv4-mapped" {
  if (!address.includes(":")) return "IPv4";
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? "IPv4-mapped" : "IPv6";
}

/** True if `host` is an IP address (`127.0.0.1`, `::1`), not a name to look up. */
export function isAddress(host: string): boolean {
  return host.includes(":") || /^\d+\.\d+\.\d+\.\d+$/.test(host);
}

/** `[::1]:65416 (IPv6)`: an endpoint and its family, as the lesson's logs show them. */
export function describeEndpoint(address: string, port: number): string {
  return `${formatAddr({ transport: "tcp", hostname: address, port })} (${familyOf(address)})`;
}
