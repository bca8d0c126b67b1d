/**
 * The lesson 21 bench's reference: `Deno.serve` serving the site's files the
 * same way the lesson's server does (read from disk on each request).
 */
const SITE = new URL("../site/", import.meta.url);
const TYPES: Record<string, string> = {
  css: "text/css; charset=utf-8",
  html: "text/html; charset=utf-8",
  svg: "image/svg+xml",
};
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`listening on 127.0.0.1:${port}`),
}, async (request) => {
  const path = new URL(request.url).pathname;
  const name = path === "/" ? "index.html" : path.slice(1);
  if (!/^[a-z]+\.[a-z]+$/.test(name)) return new Response("no such file\n", { status: 404 });
  try {
    const body = await Deno.readFile(new URL(name, SITE));
    const type = TYPES[name.split(".")[1]] ?? "application/octet-stream";
    return new Response(body, { headers: { "content-type": type } });
  } catch {
    return new Response("no such file\n", { status: 404 });
  }
});
Deno.addSignalListener("SIGTERM", () => server.shutdown());
