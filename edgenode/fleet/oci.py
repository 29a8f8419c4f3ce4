"""Filter modules from an OCI registry: ``oci://registry/repo:tag@sha256:<manifest digest>``.

Pull: the manifest is fetched (by tag when the reference has one, else by digest) and
its sha256 must equal the pinned digest, so a re-pushed tag or a registry that serves
other bytes is refused; the Wasm layer's bytes must match the layer digest the manifest
names.  A verified module is kept beside the compiled-module cache
(``<cache>/oci/<digest>.wasm``, with the layer digest it was checked against), so a
node restarts, reloads and rolls back without the registry.  Any failure raises
``OciError`` and the caller keeps the module it runs.

Push: the Wasm OCI artifact layout of Istio's WasmPlugin (Envoy) images: config
``application/vnd.module.wasm.config.v1+json``, one layer
``application/vnd.module.wasm.content.layer.v1+wasm`` named ``plugin.wasm``.  Pull also
accepts the layer types of Spin/oci-distribution (``application/vnd.wasm.content.layer.v1+wasm``),
of the CNCF Wasm artifact (``application/wasm``) and Istio's "compat" image (a
tar+gzip layer holding ``plugin.wasm``).

Registries on loopback addresses are spoken to over plain HTTP, others over HTTPS
(``EDGENODE_OCI_PLAIN_HTTP=1`` forces HTTP, for a private registry without TLS);
credentials come from the Docker config file, as for ``docker``/``oras``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import logging
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OciError", "OciRef", "parse_ref", "pull_module", "push_module", "is_oci", "cached_module",
           "WASM_LAYER_TYPES", "CONFIG_MEDIA_TYPE", "LAYER_MEDIA_TYPE", "write_atomic"]

log = logging.getLogger("edgenode.fleet")

CONFIG_MEDIA_TYPE = "application/vnd.module.wasm.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_LAYER_TYPES = (LAYER_MEDIA_TYPE, "application/vnd.wasm.content.layer.v1+wasm", "application/wasm")
_TAR_LAYER_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip",
                    "application/vnd.docker.image.rootfs.diff.tar.gzip")
_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                   "application/vnd.docker.distribution.manifest.v2+json")
_REF = re.compile(r"^oci://(?P<registry>[^/]+)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
                  r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")
#: the largest module accepted from a registry
MAX_MODULE_BYTES = 64 * 1024 * 1024


class OciError(Exception):
    """A module could not be pulled, or failed verification; the text says which and why."""


@dataclass(frozen=True)
class OciRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def plain_http(self) -> bool:
        host = self.registry.rsplit(":", 1)[0].strip("[]")
        return (os.environ.get("EDGENODE_OCI_PLAIN_HTTP") == "1" or host == "localhost"
                or host == "::1" or host.startswith("127."))

    def base(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.registry}/v2/{self.repository}"

    def __str__(self) -> str:
        return (f"oci://{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "")
                + (f"@{self.digest}" if self.digest else ""))


def is_oci(module: str) -> bool:
    return module.startswith("oci://")


def parse_ref(ref: str, *, pinned: bool = True) -> OciRef:
    m = _REF.match(ref)
    if not m:
        raise OciError(f"{ref!r} is not an OCI reference like oci://registry/repo:tag@sha256:<64 hex>")
    out = OciRef(m["registry"], m["repo"], m["tag"], m["digest"])
    if pinned and out.digest is None:
        raise OciError(f"{ref}: pin the manifest digest (oci://...:tag@sha256:...), "
                       "so every node runs the same bytes; `edgenode filter push` prints it")
    if not pinned and out.tag is None and out.digest is None:
        raise OciError(f"{ref}: name a tag")
    return out


def _client(ref: OciRef) -> Any:
    import oras.provider

    client = oras.provider.Registry(hostname=ref.registry, insecure=ref.plain_http)
    # oras retries every request for minutes (sleeping 3**n s) when a registry is down;
    # a node must give up at once and keep its module, so requests go out once
    client.do_request = functools.partial(oras.provider.Registry.do_request.__wrapped__, client)
    return client


def _get(client: Any, url: str, accept: tuple[str, ...] = ()) -> bytes:
    headers = {"Accept": ", ".join(accept)} if accept else {}
    try:
        resp = client.do_request(url, "GET", headers=headers)
    except Exception as exc:  # connection refused, DNS, TLS, auth...
        raise OciError(f"registry unreachable: {type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        raise OciError(f"GET {url}: HTTP {resp.status_code}")
    data = resp.content
    if len(data) > MAX_MODULE_BYTES:
        raise OciError(f"GET {url}: larger than {MAX_MODULE_BYTES} bytes")
    return data


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _cache_paths(cache_dir: Path, digest: str) -> tuple[Path, Path]:
    hexd = digest.split(":", 1)[1]
    return cache_dir / "oci" / f"{hexd}.wasm", cache_dir / "oci" / f"{hexd}.layer"


def cached_module(ref: str, cache_dir: Path) -> Path | None:
    """The verified local copy of ``ref``'s module, or None (never touches the network)."""
    r = parse_ref(ref)
    assert r.digest is not None
    wasm, layer = _cache_paths(cache_dir, r.digest)
    try:
        data, want = wasm.read_bytes(), layer.read_text().strip()
    except OSError:
        return None
    if _sha256(data) != want:
        log.warning("oci: cached module %s does not match its layer digest; fetching it again", wasm)
        return None
    return wasm


def pull_module(ref: str, cache_dir: Path) -> Path:
    """The local path of ``ref``'s verified module, pulled unless cached (blocking I/O)."""
    r = parse_ref(ref)
    assert r.digest is not None
    hit = cached_module(ref, cache_dir)
    if hit is not None:
        return hit
    client = _client(r)
    raw = _get(client, f"{r.base()}/manifests/{r.tag or r.digest}", _MANIFEST_TYPES)
    got = _sha256(raw)
    if got != r.digest:
        via = f"tag {r.tag!r} now points to" if r.tag else "the registry served"
        raise OciError(f"{r}: digest mismatch: {via} {got}, pinned {r.digest}; refused")
    try:
        manifest = json.loads(raw)
        layers = manifest["layers"]
    except (ValueError, KeyError, TypeError):
        raise OciError(f"{r}: the manifest is not an OCI image manifest") from None
    layer = next((lay for lay in layers if lay.get("mediaType") in WASM_LAYER_TYPES + _TAR_LAYER_TYPES), None)
    if layer is None:
        raise OciError(f"{r}: no Wasm layer (media types: {', '.join(str(lay.get('mediaType')) for lay in layers)})")
    blob = _get(client, f"{r.base()}/blobs/{layer['digest']}")
    if _sha256(blob) != layer.get("digest"):
        raise OciError(f"{r}: layer digest mismatch: got {_sha256(blob)}, manifest says {layer.get('digest')}")
    wasm = _unpack(blob, layer["mediaType"], r)
    if not wasm.startswith(b"\0asm"):
        raise OciError(f"{r}: the layer is not a Wasm binary")
    path, layer_file = _cache_paths(cache_dir, r.digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, wasm)
    write_atomic(layer_file, _sha256(wasm).encode())
    log.info("oci: pulled %s (%d bytes)", r, len(wasm))
    return path


def _unpack(blob: bytes, media_type: str, r: OciRef) -> bytes:
    if media_type in WASM_LAYER_TYPES:
        return blob
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            for member in tar.getmembers():
                if member.isfile() and Path(member.name).name == "plugin.wasm":
                    f = tar.extractfile(member)
                    if f is not None:
                        return f.read(MAX_MODULE_BYTES)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise OciError(f"{r}: cannot unpack the image layer: {exc}") from None
    raise OciError(f"{r}: the image layer has no plugin.wasm")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step: a reader sees the old bytes or the new, never half."""
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        f.write(data)
    os.replace(f.name, path)


def push_module(wasm: Path, target: str, *, root_ids: list[str] | None = None) -> str:
    """Publish ``wasm`` as a Wasm OCI artifact at ``target`` (oci://registry/repo:tag);
    returns the pinned reference ``oci://registry/repo:tag@sha256:<manifest digest>``."""
    r = parse_ref(target, pinned=False)
    data = wasm.read_bytes()
    if not data.startswith(b"\0asm"):
        raise OciError(f"{wasm}: not a Wasm binary (build it first; .wat is not pushed)")
    runtime = {"type": "envoy_proxy", "abiVersions": ["v0.2.1"], "config": {"root_ids": root_ids or []}}
    client = _client(r)
    with tempfile.TemporaryDirectory(prefix="edgenode-push-") as tmp:
        plugin, config = Path(tmp) / "plugin.wasm", Path(tmp) / "runtime-config.json"
        plugin.write_bytes(data)
        config.write_text(json.dumps(runtime))
        try:
            resp = client.push(target=f"{r.registry}/{r.repository}:{r.tag or 'latest'}",
                               files=[f"{plugin}:{LAYER_MEDIA_TYPE}"],
                               manifest_config=f"{config}:{CONFIG_MEDIA_TYPE}",
                               disable_path_validation=True, quiet=True)
        except OciError:
            raise
        except Exception as exc:
            raise OciError(f"push to {r} failed: {type(exc).__name__}: {exc}") from None
    digest = resp.headers.get("Docker-Content-Digest")
    if not digest:
        raw = _get(client, f"{r.base()}/manifests/{r.tag or 'latest'}", _MANIFEST_TYPES)
        digest = _sha256(raw)
    return str(OciRef(r.registry, r.repository, r.tag or "latest", digest))
