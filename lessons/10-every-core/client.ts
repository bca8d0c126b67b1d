/**
 * Lesson 10 client: lesson 08's echo client, on lesson 10's port (65410).
 *
 * With `--clients N` it runs N clients at once: each one gets its own
 * connection, with its own source port, so the kernel may hand each to a
 * different worker of the server. Read lessons/08-many-clients/client.ts for
 * how it works. To load the server hard, use lesson 09's load mode:
 * `deno task lesson09-client --port 65410 --load --connections 100`.
 */
import { main } from "../08-many-clients/client.ts";

await main(10);
