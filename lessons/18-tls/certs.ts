/**
 * `deno task lesson18-certs`: a small certificate authority (CA) and the
 * server certificates lesson 18 uses, made with `openssl`.
 *
 * - `ca.crt` / `ca.key`: the CA. `CA:TRUE`: it may sign other certificates.
 *   The client trusts it (and only it) with `caCerts`.
 * - `server.crt` / `server.key`: the server's certificate, signed by the CA,
 *   `CA:FALSE`, for the names `localhost`, `127.0.0.1` and `::1`
 *   (subjectAltName), valid for 30 days.
 * - `expired.crt` and `no-san.crt`: the same key, but a certificate that
 *   expired in 2020, and one with no subjectAltName, to see them refused.
 *
 * Private keys are files only this user may read (mode 600).
 */
import { LessonError, parseFlags, runMain } from "../../lib/mod.ts";
import { CERTS_DIR } from "./tls.ts";

/** The subject of the lesson's CA, as the client will print it. */
const CA_NAME = "Deno Socket Lessons 18 CA";

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      lesson: 18,
      role: "client",
      task: "lesson18-certs",
      hostPort: false,
      summary: "Makes a certificate authority and a server certificate for localhost, " +
        "127.0.0.1 and ::1 (plus an expired one and one without names) with openssl.",
      flags: {
        out: {
          type: "string",
          description: "the folder to write them to",
          default: CERTS_DIR,
          value: "DIR",
        },
      },
    });
    await makeCertificates(flags.out);
  });
}

/** Writes ca.crt, ca.key, server.crt, server.key, expired.crt and no-san.crt into `dir`. */
export async function makeCertificates(dir: string): Promise<void> {
  Deno.mkdirSync(dir, { recursive: true });
  const work = `${dir}/.openssl-work`; // openssl ca's bookkeeping files; removed at the end
  Deno.mkdirSync(work, { recursive: true });
  try {
    // 1. The CA: a key pair and a self-signed certificate that says CA:TRUE.
    await openssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ["-keyout", `${dir}/ca.key`, "-out", `${dir}/ca.crt`, "-days", "365"],
      ["-subj", `/CN=${CA_NAME}`],
      ["-addext", "basicConstraints=critical,CA:TRUE"],
      ["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    );
    console.log(`made ${dir}/ca.crt and ca.key: the certificate authority "${CA_NAME}" (CA:TRUE)`);

    // 2. The server's key, and a request for a certificate (CSR) with its public key.
    await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], [
      "-out",
      `${dir}/server.key`,
    ]);
    await openssl(["req", "-new", "-key", `${dir}/server.key`, "-subj", "/CN=localhost"], [
      "-out",
      `${work}/server.csr`,
    ]);

    // 3. The CA signs it. An end entity must say CA:FALSE, and its names go
    //    in the subjectAltName: rustls ignores the CN.
    const leaf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
      "extendedKeyUsage=serverAuth\n";
    const names = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n";
    await sign(dir, work, "server.crt", leaf + names, ["-days", "30"]);
    console.log(
      `made ${dir}/server.crt and server.key: CN=localhost, CA:FALSE, ` +
        "names localhost, 127.0.0.1 and ::1, valid for 30 days",
    );
    await sign(dir, work, "expired.crt", leaf + names, [
      "-startdate",
      "20200101000000Z",
      "-enddate",
      "20200131000000Z",
    ]);
    await sign(dir, work, "no-san.crt", leaf, ["-days", "30"]);
    console.log(`made ${dir}/expired.crt (expired in 2020) and no-san.crt (no names)`);
    Deno.chmodSync(`${dir}/ca.key`, 0o600);
    Deno.chmodSync(`${dir}/server.key`, 0o600);
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
}

/** `openssl ca` signs the request in `work` with the CA, with these extensions and dates. */
async function sign(dir: string, work: string, name: string, extensions: string, dates: string[]) {
  // openssl ca keeps a database of what it signed; a fresh one each time
  // (-rand_serial picks the serial numbers, but the config must name a file).
  Deno.writeTextFileSync(`${work}/index.txt`, "");
  Deno.writeTextFileSync(`${work}/serial`, "01\n");
  Deno.writeTextFileSync(`${work}/ext.cnf`, extensions);
  Deno.writeTextFileSync(
    `${work}/ca.cnf`,
    `[ca]\ndefault_ca = lesson\n[lesson]\ndatabase = ${work}/index.txt\n` +
      `new_certs_dir = ${work}\nserial = ${work}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n` +
      `[any]\ncommonName = supplied\n`,
  );
  await openssl(
    ["ca", "-batch", "-notext", "-rand_serial", "-config", `${work}/ca.cnf`],
    ["-cert", `${dir}/ca.crt`, "-keyfile", `${dir}/ca.key`, "-extfile", `${work}/ext.cnf`],
    ["-in", `${work}/server.csr`, "-out", `${dir}/${name}`, ...dates],
  );
}

/** Runs openssl with these arguments; a failure is one line with openssl's own words. */
async function openssl(...args: string[][]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args: args.flat(), stdin: "null" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new LessonError(
        "openssl is not installed: install it (Debian/Ubuntu: apt-get install openssl; " +
          "macOS: brew install openssl) and run this again",
      );
    }
    throw error;
  }
  if (!output.success) {
    const said = new TextDecoder().decode(output.stderr).trim().split("\n").at(-1);
    throw new LessonError(`openssl ${args[0][0]} failed: ${said}`);
  }
}
