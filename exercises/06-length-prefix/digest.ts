// Not part of the exercise: lesson 06's digest.ts, so that server.ts's `./digest.ts` resolves here too.
export * from "../../lessons/06-length-prefix/digest.ts";
