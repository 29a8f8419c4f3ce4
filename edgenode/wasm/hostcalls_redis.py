"""Redis calls from filters, as Higress's Envoy host does them (ABI marker 0.2.100).

``proxy_redis_init(cluster, username, password, timeout_ms)`` binds a cluster name to
one of the node's ``[redis.NAME]`` services (redis/services.py resolves the name;
empty credentials and a zero timeout take the service's configured ones) and returns
BAD_ARGUMENT for a name no service answers to.  ``proxy_redis_call(cluster, query,
token_ptr)`` sends ``query`` - exactly one raw RESP command - on that service's pool
and returns a token at once; the reply arrives later, like an HTTP callout's, as
``proxy_on_redis_call_response(root_id, token, status, reply_size)`` with the raw RESP
reply readable as buffer 9 (``proxy_get_buffer_bytes``) during that callback.  Status
0 means a reply came (a Redis error reply is a reply); 1 means none did (connect,
auth, I/O failure or the timeout; the host logs which).  The callout belongs to the
root context and is cancelled when the VM fails or closes; a paused stream waits for
the filter's ``proxy_continue_stream`` as with HTTP callouts.
"""

from __future__ import annotations

from edgenode.redis.pool import RedisCallError, RedisPool
from edgenode.redis.resp import RespError, frame_end
from edgenode.wasm.hostcalls import (BAD_ARGUMENT, INTERNAL_FAILURE, OK, V02X, HostVm, _proxy, _text, _vm,
                                     _vm_effect)

__all__ = ["RESPONSE_HOOK", "STATUS_OK", "STATUS_FAILED"]

RESPONSE_HOOK = "proxy_on_redis_call_response"
STATUS_OK, STATUS_FAILED = 0, 1


@_proxy("proxy_redis_init", "iiiiiii", V02X)
def proxy_redis_init(raw: tuple[int, ...]) -> int:
    # plugin-level and idempotent, so not an "effect": a start-up snapshot stays valid
    vm = _vm()
    cluster = _text(vm, raw[0], raw[1])
    username, password = _text(vm, raw[2], raw[3]), _text(vm, raw[4], raw[5])
    plugin = vm.plugin
    services = plugin.redis
    resolved = services.resolve(cluster) if services is not None else None
    if services is None or resolved is None:
        known = ", ".join(sorted(services.configs)) if services is not None else "none"
        plugin.logger.warning("proxy_redis_init: no [redis] service answers to %r (configured: %s)",
                              cluster, known, extra={"filter": plugin.name})
        return BAD_ARGUMENT
    timeout = raw[6] / 1000 if raw[6] else resolved.config.timeout
    plugin.redis_clients[cluster] = (services.pool(resolved, username, password), timeout)
    return OK


@_proxy("proxy_redis_call", "iiiii", V02X)
def proxy_redis_call(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    cluster = _text(vm, raw[0], raw[1])
    query = vm.mem.read(raw[2], raw[3])
    vm.mem.write_u32(raw[4], 0)
    client = vm.plugin.redis_clients.get(cluster)
    if client is None:
        return BAD_ARGUMENT  # not initialised with proxy_redis_init (as Higress)
    try:
        if frame_end(query) != len(query):
            return BAD_ARGUMENT  # incomplete, or several commands: replies would not pair up
    except RespError:
        return BAD_ARGUMENT
    pool, timeout = client
    try:
        token = vm.start_callout(lambda tok: _call(vm, tok, pool, timeout, query))
    except RuntimeError:  # no event loop (a start-up outside the node)
        return INTERNAL_FAILURE
    vm.mem.write_u32(raw[4], token)
    return OK


async def _call(vm: HostVm, token: int, pool: RedisPool, timeout: float, query: bytes) -> None:
    try:
        reply, status = await pool.call(query, timeout), STATUS_OK
    except RedisCallError as exc:
        vm.plugin.logger.warning("redis call %d to %s:%d failed: %s", token, pool.target.host,
                                 pool.target.port, exc, extra={"filter": vm.plugin.name})
        reply, status = b"", STATUS_FAILED
    deliver(vm, token, status, reply)


def deliver(vm: HostVm, token: int, status: int, reply: bytes) -> None:
    """Hand a reply (or a failure) to the root context, as for an HTTP callout."""
    vm.redis_reply = reply
    try:
        vm.notify_root(RESPONSE_HOOK, token, status, len(reply), phase="redis_call_response")
    finally:
        vm.redis_reply = None
