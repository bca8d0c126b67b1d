// Not part of the exercise: lesson 14's protocol.ts, so that client.ts's `./protocol.ts` resolves here too.
export * from "../../lessons/14-udp/protocol.ts";
