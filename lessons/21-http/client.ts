/**
 * Lesson 21 client: a tiny curl, on a plain TCP connection.
 *
 * It writes each request by hand and reads each answer with the server's
 * own reader (request.ts): the status line, the headers within the same
 * limits, then the body, framed one of three ways:
 *
 * 1. `Transfer-Encoding: chunked`: chunks, each with its size, up to a 0 chunk;
 * 2. `Content-Length: N`: exactly N bytes (and never more than `--max-body`);
 * 3. neither: everything until the server closes the connection.
 *
 * (An answer to HEAD, and a 204 or 304, has no body whatever its headers
 * say.) Several URLs on the same server go over one kept-alive connection,
 * one after the other. A 4xx or 5xx answer is printed, and the exit code is
 * then 22, as with `curl -f`: a script can tell "the server said no" from
 * "could not talk to the server" (exit 1).
 */
import {
  closeQuietly,
  connect,
  LessonError,
  parseFlags,
  runMain,
  terminalSafe,
  timeoutFlag,
  UsageError,
  utf8Encode,
  withDeadline,
  writeAll,
} from "../../lib/mod.ts";
import {
  ConnReader,
  DEFAULT_LIMITS,
  header,
  headText,
  HttpError,
  readChunks,
  readHeaders,
  type RequestLimits,
} from "./request.ts";

/** An answer, as read. */
export interface Response {
  version: string;
  status: number;
  reason: string;
  headers: [string, string][];
  body: Uint8Array;
  /** True if the server will close the connection after this answer. */
  closes: boolean;
}

/**
 * Reads one answer to a request with `method` from `reader`, within
 * `limits` (the body's limit is `limits.maxBodyBytes`).
 */
export async function readResponse(
  reader: ConnReader,
  method: string,
  limits: RequestLimits,
): Promise<Response> {
  while (true) {
    const first = await reader.line(limits.maxLineBytes, new HttpError(0, "a line too long"));
    if (first === null) {
      throw new HttpError(0, "the server closed the connection without answering");
    }
    const line = headText(first);
    const start = line.match(/^(HTTP\/1\.[01]) (\d{3})(?: (.*))?$/);
    if (!start) {
      throw new HttpError(0, `not an HTTP/1.x status line: ${JSON.stringify(line.slice(0, 60))}`);
    }
    const headers = await readHeaders(reader, limits, first.length + 2);
    const status = Number(start[2]);
    if (status >= 100 && status < 200) continue; // "100 Continue" and friends: the answer follows
    const response = { version: start[1], status, reason: start[3] ?? "", headers };
    const connection = (header(response, "connection") ?? "").toLowerCase();
    let closes = start[1] === "HTTP/1.0"
      ? !connection.includes("keep-alive")
      : connection.includes("close");
    let body: Uint8Array = new Uint8Array(0);
    const te = header(response, "transfer-encoding");
    const cl = header(response, "content-length");
    if (method === "HEAD" || status === 204 || status === 304) {
      // No body, whatever the headers say.
    } else if (te !== undefined) {
      if (te.toLowerCase() !== "chunked") {
        throw new HttpError(0, `Transfer-Encoding ${te}: only chunked is read`);
      }
      body = await readChunks(reader, limits);
    } else if (cl !== undefined) {
      const values = new Set(cl.split(",").map((v) => v.trim()));
      const [value] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(value)) {
        throw new HttpError(0, `a bad Content-Length: ${JSON.stringify(cl.slice(0, 40))}`);
      }
      // Never trust a length from the other side without a limit: a server
      // that says 10 GB would have us allocate 10 GB before the first byte.
      if (Number(value) > limits.maxBodyBytes) {
        throw new HttpError(
          0,
          `the body is ${value} bytes: over --max-body ${limits.maxBodyBytes}`,
        );
      }
      body = await reader.bytes(Number(value));
    } else {
      body = await reader.rest(limits.maxBodyBytes);
      closes = true;
    }
    return { ...response, body, closes };
  }
}

/** The bytes of a request. */
export function encodeRequest(
  method: string,
  url: URL,
  body: Uint8Array | undefined,
  close: boolean,
): Uint8Array {
  const lines = [
    `${method} ${url.pathname}${url.search} HTTP/1.1`,
    // Host: the name the client used, so one address can serve many sites.
    `Host: ${url.host}`,
    "User-Agent: lesson21-client",
    "Accept: */*",
  ];
  if (body !== undefined) {
    lines.push("Content-Type: application/x-www-form-urlencoded");
    lines.push(`Content-Length: ${body.length}`); // bytes, not characters
  }
  if (close) lines.push("Connection: close");
  const head = utf8Encode(lines.join("\r\n") + "\r\n\r\n");
  if (body === undefined) return head;
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return bytes;
}

/** curl's short options, spelled out for parseFlags. */
const SHORT: Record<string, string> = { "-X": "--request", "-d": "--data", "-i": "--include" };

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args.map((arg) => SHORT[arg] ?? arg), {
      lesson: 21,
      role: "client",
      summary: "Fetches URLs over HTTP/1.1, written by hand on a TCP connection; URLs on " +
        "the same server share one kept-alive connection. A 4xx/5xx answer is printed, then " +
        "exit 22 (as curl -f). A /PATH is on --host and --port; with none: /.",
      positionals: "[URL or /PATH...]",
      flags: {
        request: { type: "string", description: "the method (-X), e.g. POST", value: "METHOD" },
        data: {
          type: "string",
          description: "send this body (-d); the method is then POST",
          value: "DATA",
        },
        include: { type: "boolean", description: "print the status line and headers too (-i)" },
        timeout: timeoutFlag(10),
        "max-body": {
          type: "number",
          description: "the largest answer body accepted, in bytes",
          default: 16 * 1024 * 1024,
          min: 0,
          value: "BYTES",
        },
      },
      epilog: "Examples (a /PATH is on --host and --port):\n" +
        "  deno task lesson21-client / /style.css /logo.svg\n" +
        "  deno task lesson21-client -i -d 'name=Ada' /echo\n" +
        "  deno task lesson21-client http://127.0.0.1:65421/echo",
    });
    const host = flags.host.includes(":") ? `[${flags.host}]` : flags.host;
    const urls =
      // A path alone (`/style.css`) is on --host and --port.
      (flags.positionals.length > 0 ? flags.positionals : ["/"])
        .map((text) => text.startsWith("/") ? `http://${host}:${flags.port}${text}` : text)
        .map((text) => {
          let url: URL;
          try {
            url = new URL(text);
          } catch {
            throw new UsageError(
              `not a URL: ${JSON.stringify(text)} (e.g. http://127.0.0.1:65421/)`,
            );
          }
          if (url.protocol !== "http:") {
            throw new UsageError(
              `only http:// URLs: ${JSON.stringify(text)} (HTTPS is TLS, lesson 18)`,
            );
          }
          return url;
        });
    const body = flags.data === undefined ? undefined : utf8Encode(flags.data);
    const method = flags.request ?? (body === undefined ? "GET" : "POST");
    const limits = { ...DEFAULT_LIMITS, maxBodyBytes: flags["max-body"] };
    const terminal = Deno.stdout.isTerminal();
    let conn: Deno.TcpConn | undefined;
    let reader: ConnReader | undefined;
    let connectedTo = "";
    let failed = false;
    try {
      for (const [index, url] of urls.entries()) {
        const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
        const port = Number(url.port || 80);
        const where = `${url.hostname}:${port}`;
        if (conn === undefined || connectedTo !== where) {
          if (conn) closeQuietly(conn);
          conn = await connect({
            host: hostname,
            port,
            lesson: 21,
            timeoutMs: flags.timeout * 1000,
          });
          reader = new ConnReader(conn);
          connectedTo = where;
        }
        // The last request for this server says Connection: close.
        const last = urls.slice(index + 1).every((next) =>
          `${next.hostname}:${Number(next.port || 80)}` !== where
        );
        const c = conn;
        const r = reader!;
        let response: Response;
        try {
          response = await withDeadline(
            c,
            flags.timeout * 1000,
            `the answer from ${where}`,
            async () => {
              await writeAll(c, encodeRequest(method, url, body, last));
              return await readResponse(r, method, limits);
            },
          );
        } catch (error) {
          if (error instanceof HttpError) {
            throw new LessonError(`a bad answer from ${where}: ${error.message}`);
          }
          throw error;
        }
        if (flags.include) {
          const head = [
            `${response.version} ${response.status} ${response.reason}`,
            ...response.headers.map(([n, v]) => `${n}: ${v}`),
          ];
          console.log(head.map(terminalSafe).join("\n") + "\n");
        }
        await show(response.body, terminal);
        if (response.status >= 400) {
          failed = true;
          console.error(`${url.href}: ${response.status} ${terminalSafe(response.reason)}`);
        }
        if (response.closes) {
          closeQuietly(conn);
          conn = undefined;
        }
      }
    } finally {
      if (conn) closeQuietly(conn);
    }
    if (failed) Deno.exit(22);
  });
}

/**
 * Prints a body: the bytes as they are into a pipe or a file, but on a
 * terminal as text with control characters made visible (a hostile server
 * must not be able to rewrite the learner's screen).
 */
async function show(body: Uint8Array, terminal: boolean): Promise<void> {
  if (!terminal) {
    await writeAll(Deno.stdout, body);
    return;
  }
  const text = new TextDecoder().decode(body);
  const lines = text.split("\n").map((line) => terminalSafe(line.replace(/\r$/, "")));
  await writeAll(Deno.stdout, utf8Encode(lines.join("\n")));
}
