"""The image service: the host capability behind the image filter's callouts.

The image filter (filters/image) calls the internal upstream ``edgenode-image``
(``IMAGE_UPSTREAM``) with the source image as the body; the node serves that name
in-process with ``ImageService.handle`` (``node.register_internal_upstream``).  The
pixel work runs in a process pool whose workers run at a lower CPU priority, so a
burst of transforms never delays the event loop that serves other requests.

Protocol (docs/filters.md#image-service)::

    POST /transform?w=400&h=300&fit=cover&f=auto&q=80&dpr=1&accept=avif,webp
         [&max_px=N&max_w=N&max_h=N]          # the filter's own, lower limits
    content-type: <source type>
    x-image-source-key: <origin URL + ETag>    # identity for the decoded-source LRU
    <source bytes>

    200  content-type: image/webp, x-image-width, x-image-height; body = the variant
    400 bad parameters | 413 source over the byte/pixel limits | 422 undecodable source
    503 a worker process died (the next call starts a fresh pool)
    (errors carry x-image-error: <reason> and a text body)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import io
import multiprocessing
import os
from collections import Counter
from functools import partial
from urllib.parse import parse_qsl

from PIL import Image, UnidentifiedImageError

from edgenode.http.messages import CIMultiDict, Request, Response, read_body
from edgenode.images.params import Limits, TransformError, parse_spec
from edgenode.images.transform import transform

__all__ = ["IMAGE_UPSTREAM", "ImageService"]

IMAGE_UPSTREAM = "edgenode-image"

#: nice increment of the worker processes (the event loop keeps the CPU first)
_WORKER_NICENESS = 10


def _init_worker() -> None:
    try:
        os.nice(_WORKER_NICENESS)
    except OSError:
        pass


def _shape(data: bytes) -> str:
    """"2000x1500 JPEG" from the image header (Pillow reads no pixels for this)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return f"{im.width}x{im.height} {im.format}"
    except (UnidentifiedImageError, OSError):
        return "unreadable"


def _error(status: int, reason: str) -> Response:
    body = (reason + "\n").encode()
    headers = CIMultiDict({"content-type": "text/plain; charset=utf-8", "x-image-error": reason,
                           "content-length": str(len(body))})
    return Response(status, headers, body)


class ImageService:
    """Serves ``POST /transform`` callouts; ``workers`` processes do the pixel work."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.workers = workers or max(1, min(4, (os.cpu_count() or 2) - 1))
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.transforms = 0
        self.errors = 0
        self.bytes_in = 0
        self.bytes_out = 0
        #: output content types and source shapes ("2000x1500 JPEG") of the transforms
        self.outputs: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: the node has threads (wasm epoch ticker), so plain fork is unsafe
            ctx = multiprocessing.get_context("forkserver")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker)
        return self._pool

    async def warm_up(self) -> None:
        """Start the worker processes now rather than on the first image."""
        loop = asyncio.get_running_loop()
        pool = self._executor()
        await asyncio.gather(*(loop.run_in_executor(pool, os.getpid) for _ in range(self.workers)))

    async def handle(self, req: Request) -> Response:
        if req.method != "POST" or req.path != "/transform":
            return _error(404, f"unknown image service endpoint {req.method} {req.path}")
        try:
            limits = self.limits.narrowed(dict(parse_qsl(req.query)))
            spec = parse_spec(req.query, limits)
            try:
                source = await read_body(req.body, limits.max_source_bytes)
            except ValueError:
                raise TransformError(413, f"source image is over the limit of "
                                          f"{limits.max_source_bytes} bytes") from None
            if not source:
                raise TransformError(422, "empty source image")
            key = req.headers.get("x-image-source-key", "")
            loop = asyncio.get_running_loop()
            pool = self._executor()
            try:
                body, ctype, width, height = await loop.run_in_executor(
                    pool, partial(transform, source, spec, limits, key))
            except concurrent.futures.process.BrokenProcessPool:
                # a worker died (e.g. killed for memory): start a fresh pool next time
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
                raise TransformError(503, "image worker process died; retry") from None
        except TransformError as exc:
            self.errors += 1
            return _error(exc.status, exc.reason)
        self.transforms += 1
        self.bytes_in += len(source)
        self.bytes_out += len(body)
        self.outputs[ctype] += 1
        self.sources[_shape(source)] += 1
        headers = CIMultiDict({"content-type": ctype, "content-length": str(len(body)),
                               "x-image-width": str(width), "x-image-height": str(height)})
        return Response(200, headers, body)

    def stats(self) -> dict[str, object]:
        """What this process transformed (``/stats`` sums the workers)."""
        return {"transforms": self.transforms, "errors": self.errors, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "outputs": dict(self.outputs), "sources": dict(self.sources)}

    def shutdown(self) -> None:
        """Stop the worker processes (blocking; see ``close`` inside an event loop)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.shutdown)
