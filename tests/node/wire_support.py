"""Raw exchanges with a node on 127.0.0.1, for tests that compare the bytes on the wire."""

from __future__ import annotations

import asyncio


async def send_and_read(port: int, data: str, quiet: float) -> bytes:
    """Send ``data`` on a new connection and read until the node closes it, or until
    ``quiet`` seconds pass without a byte (a kept-alive connection the script left open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = b""
    try:
        writer.write(data.encode())
        while True:
            try:
                more = await asyncio.wait_for(reader.read(1 << 20), quiet)
            except asyncio.TimeoutError:
                break
            if not more:
                break
            out += more
    finally:
        writer.close()
    return out
