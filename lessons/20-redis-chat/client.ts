/**
 * Lesson 20 client: lesson 12's terminal chat client, unchanged, for the
 * lesson 20 servers (default port 65420; `--port 65421` for the second).
 * The point of the lesson is that clients do not know there are several
 * servers.
 */
import { main } from "../12-multi-user-chat/client.ts";

if (import.meta.main) await main(20);
