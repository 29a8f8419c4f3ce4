// The JavaScript example function (componentize-js, fetch event -> wasi:http/incoming-handler).
//   GET  .../hello        plain text, cacheable for 60 s
//   POST .../echo         JSON describing the request body it read
//   GET  .../headers      JSON of the request's fields
//   GET  .../stream?n=N   N chunks, streamed as they are written
//   GET  .../fetch?path=P an outbound request to the `default` upstream (the origin)
//   GET  .../spin         a busy loop (the CPU deadline stops it)
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

const json = (doc, status = 200) =>
  new Response(JSON.stringify(doc), { status, headers: { "content-type": "application/json" } });

async function handle(request) {
  const url = new URL(request.url);
  const route = url.pathname.split("/").pop();
  switch (route) {
    case "hello":
      return new Response(`hello from js at ${url.pathname}\n`, {
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "public, max-age=60" },
      });
    case "echo": {
      const body = await request.text();
      let parsed = null;
      try { parsed = JSON.parse(body); } catch (e) { parsed = null; }
      return json({ method: request.method, bytes: body.length, keys: parsed ? Object.keys(parsed).length : 0 });
    }
    case "headers": {
      const out = {};
      for (const [k, v] of request.headers) out[k] = v;
      return json(out);
    }
    case "stream": {
      const n = Number(url.searchParams.get("n") || "3");
      let i = 0;
      const stream = new ReadableStream({
        pull(controller) {
          if (i < n) controller.enqueue(new TextEncoder().encode(`chunk ${i++}\n`));
          else controller.close();
        },
      });
      return new Response(stream, { headers: { "content-type": "text/plain" } });
    }
    case "fetch": {
      const upstream = await fetch(`http://default${url.searchParams.get("path") || "/"}`);
      const data = await upstream.arrayBuffer();
      return json({ status: upstream.status, bytes: data.byteLength });
    }
    case "spin":
      for (;;) {}
    default:
      return json({ error: "no such route", path: url.pathname }, 404);
  }
}
