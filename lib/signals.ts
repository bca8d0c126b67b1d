/**
 * Ctrl-C and SIGTERM, handled once for every server.
 *
 * A server that prints a summary when it stops has to catch the signal that
 * stops it. Three traps wait there:
 *
 * - **One Ctrl-C can arrive twice.** A terminal sends Ctrl-C's SIGINT to
 *   every process of the foreground group: `deno task` AND the server it
 *   started, and `deno task` passes its own copy on to the server too. A
 *   server that stops listening after the first SIGINT (or has already
 *   begun to exit) is killed by the copy, silently, before its summary. So
 *   once added, the listener stays for the whole run, the program lives a
 *   quarter second past the first signal, and a second signal within that
 *   time counts as the same Ctrl-C.
 * - **A person may mean a second Ctrl-C.** A shutdown that waits for busy
 *   clients can be cut short: a deliberate second Ctrl-C says so in a line
 *   and aborts `hurry` (the server skips its grace period, then still prints
 *   its summary). A third one exits at once.
 * - **Deno sets up signal handling the first time a listener is added, and
 *   that takes a file descriptor.** A server that is out of descriptors (a
 *   crowd arrived the moment it printed `listening on`) then panics inside
 *   Deno, even one that never listens for a signal (Deno does, lazily).
 *   {@linkcode prepareSignals} does that setup early; lib's `listen` and
 *   `acceptConnections` call it, so no lesson has to remember it.
 *
 * A server with nothing to say at the end calls nothing here: Ctrl-C ends
 * it at once, as usual (exit code 130).
 *
 * @module
 */

/** The signals that ask a server to stop: Ctrl-C, and what a service manager sends. */
const SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/** Exit codes of a process ended by a signal: 128 + the signal number. */
const EXIT_CODES: Partial<Record<Deno.Signal, number>> = { SIGINT: 130, SIGTERM: 143 };

/**
 * A second signal this soon after the first is the same Ctrl-C (the copy
 * `deno task` passes on): a person who means a second Ctrl-C takes longer.
 */
const SAME_PRESS_MS = 250;

let prepared = false;
let installed = false;
let count = 0;
let firstAt = 0;
let hurry: AbortController | undefined;
const callbacks: ((request: ShutdownRequest) => void)[] = [];

/** What a shutdown callback is told. */
export interface ShutdownRequest {
  /** The signal that asked for the shutdown: `SIGINT` (Ctrl-C) or `SIGTERM`. */
  signal: Deno.Signal;
  /** Aborted by a deliberate second Ctrl-C: stop waiting for clients now. */
  hurry: AbortSignal;
}

/**
 * Sets up signal handling now, while descriptors are surely available (see
 * the module doc). Safe to call many times; lib's `listen` and
 * `acceptConnections` call it. In a Worker it does nothing.
 *
 * @example
 * ```ts
 * import { prepareSignals } from "./signals.ts";
 * prepareSignals(); // before a listener that a crowd may fill at once
 * ```
 */
export function prepareSignals(): void {
  // A Worker (lesson 10) leaves signals to the main program.
  if (prepared || "WorkerGlobalScope" in globalThis) return;
  prepared = true;
  // Deno's setup stays once done. The listener goes at once, and it is for
  // SIGWINCH (a terminal was resized), whose default is to do nothing: in
  // Deno 2.9, a listener removed and another added soon after for the SAME
  // signal sometimes leaves the default in place, and for SIGINT that
  // default is death. Ctrl-C still simply ends a program that never calls
  // onShutdown.
  if (Deno.build.os === "windows") return;
  const nothing = () => {};
  Deno.addSignalListener("SIGWINCH", nothing);
  Deno.removeSignalListener("SIGWINCH", nothing);
}

/**
 * Runs `callback` at the first Ctrl-C (SIGINT) or SIGTERM, once. From then
 * on the server decides when to exit: a second signal no longer kills it.
 *
 * @example
 * ```ts ignore
 * import { onShutdown } from "./signals.ts";
 * onShutdown(() => listener.close()); // the accept loop ends; the summary follows
 * ```
 */
export function onShutdown(callback: (request: ShutdownRequest) => void): void {
  callbacks.push(callback);
  if (installed) return;
  installed = true;
  // Never removed: see the module doc (one Ctrl-C can arrive twice).
  for (const signal of SIGNALS) Deno.addSignalListener(signal, () => received(signal));
}

/**
 * Resolves at the first Ctrl-C (SIGINT) or SIGTERM; see {@linkcode onShutdown}.
 *
 * @example
 * ```ts ignore
 * import { shutdownRequested } from "./signals.ts";
 * const { hurry } = await shutdownRequested();
 * await server.stop(hurry); // a second Ctrl-C cuts the grace period short
 * ```
 */
export function shutdownRequested(): Promise<ShutdownRequest> {
  return new Promise((resolve) => onShutdown(resolve));
}

/** One signal arrived. */
function received(signal: Deno.Signal): void {
  const now = Date.now();
  count++;
  if (count === 1) {
    firstAt = now;
    // Stay alive long enough for the copy to find our listener: a process
    // that is already exiting has none, and the copy would kill it (exit 130).
    setTimeout(() => {}, SAME_PRESS_MS);
    hurry = new AbortController();
    for (const callback of callbacks.splice(0)) callback({ signal, hurry: hurry.signal });
    return;
  }
  if (now - firstAt < SAME_PRESS_MS) {
    count--; // the copy of the first Ctrl-C that `deno task` passed on
    return;
  }
  if (count === 2) {
    console.log(`${signal} again: not waiting for clients any longer (once more to exit at once)`);
    hurry?.abort();
    return;
  }
  console.log(`${signal} a third time: exiting at once, without a summary`);
  Deno.exit(EXIT_CODES[signal] ?? 1);
}
