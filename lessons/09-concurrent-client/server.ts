/**
 * Lesson 09 server: lesson 08's echo server, on lesson 09's port (65409).
 *
 * This lesson is about the client, so the server is the one from lesson 08,
 * unchanged: `main(9)` only changes the default port and the task name shown
 * by `--help`. Read lessons/08-many-clients/server.ts for how it works.
 */
import { main } from "../08-many-clients/server.ts";

await main(9);
