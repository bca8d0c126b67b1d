/**
 * `deno task lesson18-bench`: what Nagle's algorithm costs a TLS client.
 *
 * Each connection: TCP connect, TLS handshake (verified with the lesson's
 * CA), one line out, its answer back, close. Once with Deno's default (Nagle
 * on, which is also all that `Deno.connectTls` can do), once with
 * `setNoDelay(true)` before `Deno.startTls`. The two alternate in every
 * repetition, against the same TLS listener in this process, so a busy
 * moment hits both.
 *
 * Usage: deno task lesson18-bench [--reps N] [--connections N]
 */
import { parseFlags, runMain, utf8Encode } from "../../lib/mod.ts";
import { ALPN, CERTS_DIR, readCertFile } from "./tls.ts";

await runMain(async () => {
  const flags = parseFlags(Deno.args, {
    lesson: 18,
    role: "client",
    task: "lesson18-bench",
    hostPort: false,
    summary: "Connections per second with and without TCP_NODELAY under TLS (needs " +
      "deno task lesson18-certs first).",
    flags: {
      reps: { type: "number", description: "repetitions", default: 5, min: 1 },
      connections: { type: "number", description: "connections per run", default: 30, min: 1 },
    },
  });
  // Missing certificates: one line that says how to make them.
  const ca = readCertFile(`${CERTS_DIR}/ca.crt`, "CA certificate");
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: readCertFile(`${CERTS_DIR}/server.crt`),
    key: readCertFile(`${CERTS_DIR}/server.key`, "key"),
    alpnProtocols: [ALPN],
  });
  // The server: read one line's worth, answer it, close.
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const buffer = new Uint8Array(64);
        const n = await conn.read(buffer);
        if (n) await conn.write(buffer.subarray(0, n));
      })().catch(() => {}).finally(() => conn.close());
    }
  })();

  const once = async (noDelay: boolean) => {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    if (noDelay) tcp.setNoDelay(true);
    const conn = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [ca] });
    try {
      await conn.write(utf8Encode("Hello\n"));
      await conn.read(new Uint8Array(64));
    } finally {
      conn.close();
    }
  };
  const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1];
  const ms: Record<string, number[]> = { nagle: [], noDelay: [] };
  for (let rep = 1; rep <= flags.reps; rep++) {
    const row: string[] = [];
    for (const noDelay of [false, true]) {
      const times: number[] = [];
      for (let i = 0; i < flags.connections; i++) {
        const start = performance.now();
        await once(noDelay);
        times.push(performance.now() - start);
      }
      ms[noDelay ? "noDelay" : "nagle"].push(median(times));
      row.push(
        `${noDelay ? "setNoDelay(true)" : "default (Nagle)"} ${median(times).toFixed(1)} ms`,
      );
    }
    console.log(`run ${rep}: median per connection: ${row.join(", ")}`);
  }
  const nagle = median(ms.nagle), noDelay = median(ms.noDelay);
  console.log(
    `median of ${flags.reps} runs: ${nagle.toFixed(1)} ms with Nagle, ${noDelay.toFixed(1)} ms ` +
      `without: ${(nagle / noDelay).toFixed(0)} times faster`,
  );
  listener.close();
});
