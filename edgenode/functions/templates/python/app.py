"""{{name}}: an edge function, built with componentize-py and Spin's Python SDK."""

import json

from spin_sdk import http, variables
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?", 1)[0]
        if request.method == "POST":
            body = request.body or b""
            doc = {"function": "{{name}}", "path": path, "bytes": len(body)}
            return Response(200, {"content-type": "application/json"}, json.dumps(doc).encode())
        greeting = variables.get("greeting")
        return Response(200, {"content-type": "text/plain; charset=utf-8", "cache-control": "public, max-age=60"},
                        f"{greeting} from {{name}} (python) at {path}\n".encode())
