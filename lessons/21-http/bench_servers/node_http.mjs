// The lesson 21 bench's reference: node:http (run by Node) serving the site's
// files the same way the lesson's server does (read from disk on each request).
import http from "node:http";
import { readFile } from "node:fs/promises";

const SITE = new URL("../site/", import.meta.url);
const TYPES = {
  css: "text/css; charset=utf-8",
  html: "text/html; charset=utf-8",
  svg: "image/svg+xml",
};
const server = http.createServer(async (request, response) => {
  const path = new URL(request.url, "http://x").pathname;
  const name = path === "/" ? "index.html" : path.slice(1);
  try {
    if (!/^[a-z]+\.[a-z]+$/.test(name)) throw new Error("no such file");
    const body = await readFile(new URL(name, SITE));
    response.writeHead(200, {
      "content-type": TYPES[name.split(".")[1]] ?? "application/octet-stream",
      "content-length": body.length,
    });
    response.end(body);
  } catch {
    response.writeHead(404, { "content-type": "text/plain" });
    response.end("no such file\n");
  }
});
server.listen(0, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${server.address().port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
