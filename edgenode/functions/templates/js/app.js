// {{name}}: an edge function. componentize-js turns the `fetch` event into the
// component's wasi:http/incoming-handler export; the edge node calls it per request.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  if (request.method === "POST") {
    const body = await request.text();
    return new Response(JSON.stringify({ function: "{{name}}", path: url.pathname, bytes: body.length }), {
      headers: { "content-type": "application/json" },
    });
  }
  return new Response(`hello from {{name}} (js) at ${url.pathname}\n`, {
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "public, max-age=60" },
  });
}
