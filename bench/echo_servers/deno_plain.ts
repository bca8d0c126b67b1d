/**
 * The plainest Deno echo server, for `deno task bench-echo` to compare the
 * lessons with: accept, then read into a 64 KiB buffer and write it back,
 * until EOF. No connection limit, no idle timeout, no log: what a server
 * costs before it protects itself (lesson 08 adds all that).
 *
 * Usage: deno run --allow-net=127.0.0.1 deno_plain.ts [--host HOST] [--port PORT]
 * (default 127.0.0.1, port 0)
 *
 * @module
 */

/** The value after `--name` on the command line, or `fallback`. */
function flag(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
}

async function echo(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    let n: number | null;
    while ((n = await conn.read(buffer)) !== null) {
      let written = 0;
      while (written < n) written += await conn.write(buffer.subarray(written, n));
    }
  } catch {
    // A reset or a broken pipe ends this connection only.
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

const hostname = flag("host", "127.0.0.1");
const listener = Deno.listen({ hostname, port: Number(flag("port", "0")) });
console.log(`listening on ${hostname}:${listener.addr.port}`);
for await (const conn of listener) echo(conn);
