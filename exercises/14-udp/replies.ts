// Not part of the exercise: lesson 14's replies.ts, so that client.ts's `./replies.ts` resolves here too.
export * from "../../lessons/14-udp/replies.ts";
