"""edgenode: an edge CDN node with an RFC 9111 shared cache and Proxy-Wasm filters."""

__version__ = "0.1.0"
