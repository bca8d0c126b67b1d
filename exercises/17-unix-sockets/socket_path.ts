// Not part of the exercise: lesson 17's socket_path.ts, so that server.ts's `./socket_path.ts` resolves here too.
export * from "../../lessons/17-unix-sockets/socket_path.ts";
