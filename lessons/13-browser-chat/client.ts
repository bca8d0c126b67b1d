/**
 * Lesson 13 client: lesson 12's terminal chat client, on lesson 13's port
 * (65413).
 *
 * Terminal users and browser users meet in the same room: the chat server
 * cannot tell them apart, because the gateway speaks the same lines. Read
 * lessons/12-multi-user-chat/client.ts for how it works.
 */
import { main } from "../12-multi-user-chat/client.ts";

await main(13);
