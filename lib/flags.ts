/**
 * Command-line flags, the same way in every lesson.
 *
 * Every server and client takes `--host`, `--port` and `--help`; a lesson adds
 * its own flags by describing them. Parsing is done by `parseArgs` from
 * `@std/cli`; this module adds what a course needs on top: each lesson's own
 * default port (65400 + lesson number), validation with a clear one-line
 * error, a generated `--help`, and ignoring a leading `--` (so
 * `deno task lesson02-client -- --port 5` works).
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { UsageError } from "./errors.ts";

/** The first lesson port: lesson NN listens on `BASE_PORT + NN` by default. */
export const BASE_PORT = 65400;

/** Describes one lesson-specific flag. */
export type FlagSpec =
  | { type: "string"; description: string; default?: string; value?: string }
  | {
    type: "number";
    description: string;
    default?: number;
    value?: string;
    /** smallest accepted value (default 0) */
    min?: number;
    /** largest accepted value */
    max?: number;
    /** accept only whole numbers (default true) */
    integer?: boolean;
  }
  | { type: "boolean"; description: string }
  | { type: "list"; description: string; value?: string };

/** The type of value a {@linkcode FlagSpec} produces. */
export type FlagValue<S> = S extends { type: "boolean" } ? boolean
  : S extends { type: "list" } ? string[]
  : S extends { type: "number"; default: number } ? number
  : S extends { type: "number" } ? number | undefined
  : S extends { type: "string"; default: string } ? string
  : string | undefined;

/**
 * The `--idle-timeout SECONDS` flag that every server has: a client that
 * sends nothing for this long is closed, so a silent peer cannot hold a
 * connection (and its memory) forever.
 *
 * @example
 * ```ts
 * import { idleTimeoutFlag, parseFlags } from "./flags.ts";
 * const flags = parseFlags([], {
 *   lesson: 2,
 *   role: "server",
 *   summary: "An echo server.",
 *   flags: { "idle-timeout": idleTimeoutFlag(60) },
 * });
 * flags["idle-timeout"]; // 60
 * ```
 */
export function idleTimeoutFlag(seconds: number): {
  type: "number";
  description: string;
  default: number;
  min: number;
  value: string;
} {
  return {
    type: "number",
    description: "close a client that sends nothing for this many seconds",
    default: seconds,
    min: 1,
    value: "SECONDS",
  };
}

/**
 * The `--max-connections N` flag of every server that serves many clients at
 * once: over the limit a client is told `server busy` and closed, so a crowd
 * cannot exhaust the server's memory or file descriptors.
 *
 * @example
 * ```ts
 * import { maxConnectionsFlag, parseFlags } from "./flags.ts";
 * const flags = parseFlags(["--max-connections", "50"], {
 *   lesson: 5,
 *   role: "server",
 *   summary: "A line server.",
 *   flags: { "max-connections": maxConnectionsFlag(500) },
 * });
 * flags["max-connections"]; // 50
 * ```
 */
export function maxConnectionsFlag(count: number): {
  type: "number";
  description: string;
  default: number;
  min: number;
  value: string;
} {
  return {
    type: "number",
    description: 'serve at most this many clients at once; more get "server busy"',
    default: count,
    min: 1,
    value: "N",
  };
}

/**
 * The `--timeout SECONDS` flag of a client: the whole answer must arrive
 * within this time (a deadline, not a limit per read), so a server that goes
 * silent, or sends one byte every few seconds, cannot keep the client waiting.
 *
 * @example
 * ```ts
 * import { parseFlags, timeoutFlag } from "./flags.ts";
 * const flags = parseFlags([], {
 *   lesson: 2,
 *   role: "client",
 *   summary: "An echo client.",
 *   flags: { timeout: timeoutFlag(10) },
 * });
 * flags.timeout; // 10
 * ```
 */
export function timeoutFlag(seconds: number): {
  type: "number";
  description: string;
  default: number;
  min: number;
  max: number;
  integer: false;
  value: string;
} {
  return {
    type: "number",
    description: "give up if the whole answer has not arrived within this many seconds",
    default: seconds,
    min: 0.1,
    max: 3600,
    integer: false,
    value: "SECONDS",
  };
}

/**
 * Reads a `HOST:PORT` flag value (an IPv6 host in brackets); anything else is
 * a {@linkcode UsageError} naming the flag. For a program that connects to
 * another server: lesson 13's `--chat`, lesson 19's `--to`.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./flags.ts";
 * parseHostPort("127.0.0.1:65420", "--chat"); // { hostname: "127.0.0.1", port: 65420 }
 * parseHostPort("[::1]:65405", "--to"); // { hostname: "::1", port: 65405 }
 * ```
 */
export function parseHostPort(
  text: string,
  flag: string,
  example = "127.0.0.1:65405",
): { hostname: string; port: number } {
  const match = text.match(/^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    throw new UsageError(`${flag} must be HOST:PORT, e.g. ${example}, got ${JSON.stringify(text)}`);
  }
  return { hostname: match[1] ?? match[2], port };
}

/** What {@linkcode parseFlags} returns: host, port, positionals and each lesson flag. */
export type Flags<F extends Record<string, FlagSpec>> =
  & { host: string; port: number; positionals: string[] }
  & { [K in keyof F]: FlagValue<F[K]> };

/** Describes a lesson program for {@linkcode parseFlags}. */
export interface ProgramSpec<F extends Record<string, FlagSpec>> {
  /** The lesson number, e.g. 2; sets the default port and the task name. */
  lesson: number;
  /** Which side this program is. */
  role: "server" | "client";
  /** One or two sentences for `--help`. */
  summary: string;
  /** The lesson's own flags, by name without the dashes. */
  flags?: F;
  /** If the program takes positional arguments, their usage, e.g. "COMMAND [ARGS...]". */
  positionals?: string;
  /** Extra text for the end of `--help` (examples). */
  epilog?: string;
  /**
   * False for a program that has no `--host`/`--port` (lesson 17 has a
   * socket path instead); then `host` and `port` are not set. Default true.
   */
  hostPort?: boolean;
  /** The task name for `--help` when it is not `lessonNN-ROLE` (e.g. `lesson18-certs`). */
  task?: string;
}

/**
 * The task name of a lesson program, e.g. `lesson02-client`.
 *
 * @example
 * ```ts
 * import { taskName } from "./flags.ts";
 * taskName(2, "client"); // "lesson02-client"
 * ```
 */
export function taskName(lesson: number, role: "server" | "client"): string {
  return `lesson${String(lesson).padStart(2, "0")}-${role}`;
}

/**
 * The default port of a lesson (65400 + its number).
 *
 * @example
 * ```ts
 * import { defaultPort } from "./flags.ts";
 * defaultPort(2); // 65402
 * ```
 */
export function defaultPort(lesson: number): number {
  return BASE_PORT + lesson;
}

/**
 * Builds the `--help` text of a lesson program.
 *
 * @example
 * ```ts
 * import { usage } from "./flags.ts";
 * console.log(usage({ lesson: 2, role: "client", summary: "Sends a message." }));
 * ```
 */
export function usage<F extends Record<string, FlagSpec>>(spec: ProgramSpec<F>): string {
  const hostHelp = spec.role === "server"
    ? "address to listen on (default 127.0.0.1)"
    : "server address to connect to (default 127.0.0.1)";
  const portHelp = spec.role === "server"
    ? `port to listen on, 0 picks a free one (default ${defaultPort(spec.lesson)})`
    : `server port (default ${defaultPort(spec.lesson)})`;
  const rows: [string, string][] = spec.hostPort === false
    ? []
    : [["--host HOST", hostHelp], ["--port PORT", portHelp]];
  for (const [name, flag] of Object.entries(spec.flags ?? {})) {
    const value = flag.type === "boolean" ? "" : ` ${flag.value ?? name.toUpperCase()}`;
    const dflt = "default" in flag && flag.default !== undefined
      ? ` (default ${
        typeof flag.default === "string" ? JSON.stringify(flag.default) : flag.default
      })`
      : "";
    const repeat = flag.type === "list" ? " (repeatable)" : "";
    rows.push([`--${name}${value}`, `${flag.description}${repeat}${dflt}`]);
  }
  rows.push(["--help", "show this help and exit"]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const positionals = spec.positionals ? ` ${spec.positionals}` : "";
  return [
    `Usage: deno task ${spec.task ?? taskName(spec.lesson, spec.role)} [OPTIONS]${positionals}`,
    "",
    spec.summary,
    "",
    "Options:",
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`),
    ...(spec.epilog ? ["", spec.epilog] : []),
  ].join("\n");
}

function parseNumber(name: string, raw: string, spec: FlagSpec & { type: "number" }): number {
  const min = spec.min ?? 0;
  const max = spec.max ?? Number.MAX_SAFE_INTEGER;
  const integer = spec.integer ?? true;
  const value = raw.trim() === "" ? NaN : Number(raw);
  if (
    !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max
  ) {
    const kind = integer ? "a whole number" : "a number";
    const range = spec.max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`--${name} must be ${kind} ${range}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * {@linkcode parseFlags} for a program with `hostPort: false` (no `--host` or
 * `--port`, lesson 17's socket path instead): its flags have no `host` or `port`.
 */
export function parseFlags<F extends Record<string, FlagSpec> = Record<never, FlagSpec>>(
  args: string[],
  spec: ProgramSpec<F> & { hostPort: false },
): Omit<Flags<F>, "host" | "port">;
/**
 * Parses a lesson program's arguments. `--help` prints the usage and exits 0;
 * an unknown flag or a bad value throws a {@linkcode UsageError} whose message
 * names the flag (run the program under `runMain` to print it as one line).
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["--", "--port", "40000", "--message", "hi"], {
 *   lesson: 2,
 *   role: "client",
 *   summary: "Sends a message and prints the echo.",
 *   flags: { message: { type: "string", description: "text to send", default: "Hello, world" } },
 * });
 * flags.port; // 40000
 * flags.message; // "hi"
 * ```
 */
export function parseFlags<F extends Record<string, FlagSpec> = Record<never, FlagSpec>>(
  args: string[],
  spec: ProgramSpec<F>,
): Flags<F>;
// The implementation: with `hostPort: false` (the first form) there is no host or port.
export function parseFlags<F extends Record<string, FlagSpec> = Record<never, FlagSpec>>(
  args: string[],
  spec: ProgramSpec<F>,
): Flags<F> {
  // `deno task NAME -- --port 5` passes the `--` through; it means nothing here.
  if (args[0] === "--") args = args.slice(1);
  // `--port -1` should say "-1 is out of range", not "unknown option -1".
  args = joinNegativeNumbers(args);
  const flagSpecs: Record<string, FlagSpec> = spec.flags ?? {};
  const unknown: string[] = [];
  const parsed = parseArgs(args, {
    string: [
      // "_" keeps positionals as typed: without it `set a 0123` would store 123.
      "_",
      ...(spec.hostPort === false ? [] : ["host", "port"]),
      ...Object.keys(flagSpecs).filter((name) => flagSpecs[name].type !== "boolean"),
    ],
    boolean: ["help", ...Object.keys(flagSpecs).filter((n) => flagSpecs[n].type === "boolean")],
    collect: Object.keys(flagSpecs).filter((name) => flagSpecs[name].type === "list"),
    unknown: (arg: string) => {
      if (arg.startsWith("-")) unknown.push(arg);
      return true;
    },
  }) as Record<string, unknown> & { _: (string | number)[] };

  if (parsed.help) {
    console.log(usage(spec));
    Deno.exit(0);
  }
  if (unknown.length > 0) {
    const name = unknown[0].split("=")[0];
    throw new UsageError(`unknown option ${name} (see --help)`);
  }
  const positionals = parsed._.map(String);
  if (!spec.positionals && positionals.length > 0) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])} (see --help)`);
  }

  const result: Record<string, unknown> = { positionals };
  if (spec.hostPort !== false) {
    const host = parsed.host === undefined ? "127.0.0.1" : lastValue("host", parsed.host);
    if (host === "") throw new UsageError("--host needs an address, e.g. --host 127.0.0.1");
    result.host = host;
    result.port = parsed.port === undefined
      ? defaultPort(spec.lesson)
      : parseNumber("port", lastValue("port", parsed.port), {
        type: "number",
        description: "",
        // A server may ask for port 0 (any free port); a client must name a real one.
        min: spec.role === "server" ? 0 : 1,
        max: 65535,
      });
  }

  for (const [name, flag] of Object.entries(flagSpecs)) {
    const raw = parsed[name];
    if (flag.type === "boolean") {
      result[name] = raw === true;
    } else if (flag.type === "list") {
      result[name] = (raw as unknown[] | undefined ?? []).map((v) => checkValue(name, v));
    } else if (raw === undefined) {
      result[name] = flag.default;
    } else if (flag.type === "number") {
      result[name] = parseNumber(name, lastValue(name, raw), flag);
    } else {
      result[name] = lastValue(name, raw);
    }
  }
  return result as Flags<F>;
}

/**
 * Rewrites `--name -5` as `--name=-5` and `--name ""` as `--name=`, so parseArgs
 * reads them as (bad) values to report, not as another flag or a positional.
 */
function joinNegativeNumbers(args: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (/^--[^=]+$/.test(args[i]) && /^(-\d|$)/.test(args[i + 1] ?? "-")) {
      joined.push(`${args[i]}=${args[++i]}`);
    } else {
      joined.push(args[i]);
    }
  }
  return joined;
}

/** A flag given twice keeps its last value, as most command-line tools do. */
function lastValue(name: string, raw: unknown): string {
  return checkValue(name, Array.isArray(raw) ? raw.at(-1) : raw);
}

function checkValue(name: string, raw: unknown): string {
  // parseArgs gives "" for a string flag at the end of the line with no value.
  if (typeof raw !== "string" || raw === "") {
    throw new UsageError(`--${name} needs a value (see --help)`);
  }
  return raw;
}
