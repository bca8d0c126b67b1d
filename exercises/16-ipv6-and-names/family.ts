// Not part of the exercise: lesson 16's family.ts, so that eyeballs.ts's `./family.ts` resolves here too.
export * from "../../lessons/16-ipv6-and-names/family.ts";
