"""A raw-reply Redis client for filter callouts: RESP framing (resp.py), asyncio
connection pools (pool.py) and the node's named Redis services (services.py)."""
