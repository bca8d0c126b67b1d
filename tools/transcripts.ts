/**
 * The expected-output blocks of the lesson READMEs, run for real.
 *
 * A README marks a block it promises is real output with the info string
 * `console checked`. Each such block starts with one `$ deno task ...` line
 * and then lists what that program prints. This module runs the blocks of a
 * README in order, as a learner would in two terminals:
 *
 * - a `lessonNN-server` block starts the server (on `--port 0`); its lines are
 *   everything the server prints until the next server block or the end of
 *   the README (a line `^C` means: press Ctrl-C, i.e. send SIGINT, once the
 *   clients are done; lines after it are what the server prints as it stops);
 * - a server block with `--to HOST:PORT` (lesson 19's proxy) runs in front of
 *   the server started before it: that one keeps running as its upstream,
 *   `--to` gets its real port, and the clients after it talk to the proxy;
 * - a client block runs the client against that server (or, before any
 *   server, against a port where nothing listens); its lines are what it
 *   prints, stdout then stderr;
 * - a `lessonNN-certs` block (lesson 18) runs that task once, as written;
 * - `echo "TEXT" | deno task ...` pipes TEXT and a newline to the client.
 *
 * Ports and timings vary between runs, so both sides are normalised before
 * they are compared: every `HOST:PORT` becomes `HOST:PORT`-with-`PORT`, a
 * duration such as `12.3 ms` becomes `N ms`, and lesson 17's private socket
 * directory (`/run/user/1000/deno-socket-lessons/` in its README, another
 * one on each machine) becomes `SOCKETS/`.
 *
 * @module
 */

import {
  closedPort,
  LessonServer,
  type RunResult,
  runTask,
  usesUnixSocket,
} from "./lesson_process.ts";

/** One `console checked` block of a README. */
export interface CheckedBlock {
  /** 1-based line number of the `$` line in the README. */
  line: number;
  /** The command as written, without `$ `. */
  command: string;
  /** The task, e.g. `lesson02-client`. */
  task: string;
  /** Arguments after the task name (any `--port N` removed: the run picks the port). */
  args: string[];
  /** Text piped to standard input, if the command starts with `echo "…" |`. */
  stdin?: string;
  /** The output lines the README shows (without the `^C` line). */
  expected: string[];
  /** True if the block has a `^C` line (the server is stopped with SIGINT there). */
  interrupt: boolean;
}

/** The result of running one block. */
export interface BlockRun {
  /** The block as written in the README. */
  block: CheckedBlock;
  /** The lines the program really printed. */
  actual: string[];
  /** True if they match the README once normalised. */
  ok: boolean;
  /** Exit code of the program. */
  code: number;
}

/** Splits a command line into words, honouring '…' and "…" quotes. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const match of line.matchAll(pattern)) {
    if (match[1] !== undefined) words.push(match[1].replace(/\\(.)/g, "$1"));
    else if (match[2] !== undefined) words.push(match[2]);
    else words.push(match[3]);
  }
  return words;
}

/** Finds the `console checked` blocks in a README's text. */
export function parseCheckedBlocks(markdown: string): CheckedBlock[] {
  const blocks: CheckedBlock[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "```console checked") continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trim() !== "```") end++;
    const body = lines.slice(start, end);
    const first = body[0] ?? "";
    if (!first.startsWith("$ ")) {
      throw new Error(
        `README line ${start + 1}: a checked block must start with "$ deno task ..."`,
      );
    }
    let command = first.slice(2);
    let stdin: string | undefined;
    const pipe = command.match(/^echo (".*?"|'.*?'|\S+) \| (.*)$/);
    if (pipe) {
      stdin = splitWords(pipe[1])[0] + "\n";
      command = pipe[2];
    }
    const words = splitWords(command);
    if (
      words[0] !== "deno" || words[1] !== "task" ||
      !/^lesson\d\d-(server|client|certs)$/.test(words[2])
    ) {
      throw new Error(
        `README line ${start + 1}: expected "deno task lessonNN-server|client|certs"`,
      );
    }
    const args: string[] = [];
    const rest = words.slice(3);
    for (let k = 0; k < rest.length; k++) {
      if (rest[k] === "--port") k++;
      else if (!rest[k].startsWith("--port=")) args.push(rest[k]);
    }
    // `^C` marks where the learner presses Ctrl-C; lines after it are what the
    // server prints while it shuts down.
    const interruptAt = body.indexOf("^C");
    const interrupt = interruptAt > 0;
    const expected = body.slice(1).filter((line) => line !== "^C");
    blocks.push({
      line: start + 1,
      command: first.slice(2),
      task: words[2],
      args,
      stdin,
      expected,
      interrupt,
    });
    i = end;
  }
  return blocks;
}

/** Replaces what changes from run to run (ports, timings, socket directory) with placeholders. */
export function normalise(line: string): string {
  return line
    .replace(/\/[^\s:]*\/\.?deno-socket-lessons\//g, "SOCKETS/")
    .replace(/((?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:.]+\]|localhost):\d{1,5}\b/g, "$1:PORT")
    .replace(/\bport \d{1,5}\b/g, "port PORT")
    .replace(/\b\d+(\.\d+)? ?(ms|µs)\b/g, "N $2");
}

function outputLines(result: RunResult): string[] {
  const lines = (result.stdout + result.stderr).split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

function compare(block: CheckedBlock, actual: string[], code: number): BlockRun {
  const ok = actual.length === block.expected.length &&
    actual.every((line, i) => normalise(line) === normalise(block.expected[i]));
  return { block, actual, ok, code };
}

/**
 * Runs every checked block of a README in order and reports each one.
 * Servers are always stopped, even when a block fails. `options.env` adds
 * environment variables to every program (the tests give lesson 17 an
 * `XDG_RUNTIME_DIR` of their own).
 */
export async function runCheckedBlocks(
  markdown: string,
  options: { env?: Record<string, string> } = {},
): Promise<BlockRun[]> {
  const env = options.env;
  const blocks = parseCheckedBlocks(markdown);
  const runs: (BlockRun | undefined)[] = blocks.map(() => undefined);
  type Running = { server: LessonServer; index: number };
  let server: Running | undefined;
  // The server a proxy block (`--to`) relays to; it stops with the proxy.
  let upstream: Running | undefined;
  let fallbackPort: number | undefined;

  const finish = async (entry: Running) => {
    const { server: running, index } = entry;
    const block = blocks[index];
    let result: RunResult;
    if (block.interrupt) {
      // Wait until the server has printed what it will, then press Ctrl-C.
      await running.waitForQuiet();
      result = await running.stop("SIGINT");
    } else {
      // The server may exit by itself (lesson 01); otherwise wait for its output.
      await running.waitForLineCount(block.expected.length, 10_000);
      await running.waitForExit(100);
      result = await running.stop();
    }
    runs[index] = compare(block, outputLines({ ...result, stderr: "" }), result.code);
  };
  const finishServer = async () => {
    const entry = server;
    server = undefined;
    if (entry) await finish(entry);
  };
  const finishAll = async () => {
    await finishServer();
    const entry = upstream;
    upstream = undefined;
    if (entry) await finish(entry);
  };

  try {
    for (const [index, block] of blocks.entries()) {
      if (block.task.endsWith("-server")) {
        const to = block.args.indexOf("--to");
        const args = [...block.args];
        if (to !== -1 && (server || upstream)) {
          // A proxy: the server before it (or the previous proxy's upstream) stays up.
          if (upstream) await finishServer();
          else [upstream, server] = [server, undefined];
          args[to + 1] = args[to + 1].replace(/:\d+$/, `:${upstream!.server.port}`);
        } else {
          await finishAll();
        }
        const started = await LessonServer.start(block.task, args, 20_000, { env });
        server = { server: started, index };
        continue;
      }
      const port = server?.server.port ?? (fallbackPort ??= closedPort());
      // A Unix socket client has no port: the README's --path (or default) is used.
      // A setup task (lesson 18's lessonNN-certs) is run as written.
      const where = usesUnixSocket(block.task) || !block.task.endsWith("-client")
        ? []
        : ["--port", String(port)];
      const result = await runTask(block.task, [...block.args, ...where], {
        stdin: block.stdin,
        env,
      });
      runs[index] = compare(block, outputLines(result), result.code);
    }
    await finishAll();
  } finally {
    if (server) await server.server.stop("SIGKILL");
    if (upstream) await upstream.server.stop("SIGKILL");
  }
  return runs.map((run, i) => run ?? { block: blocks[i], actual: [], ok: false, code: -1 });
}
