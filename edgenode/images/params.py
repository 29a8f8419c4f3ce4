"""Transform parameters of the image service's callout protocol (pure, no I/O).

The image filter sends ``POST /transform?w=..&h=..&fit=..&f=..&q=..&dpr=..`` to the
internal upstream ``edgenode-image``; this module turns that query into a validated
``TransformSpec`` (or a ``TransformError`` with the HTTP status to answer) and holds
the limits the service enforces no matter what the filter asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

__all__ = ["FITS", "FORMATS", "MIME", "Limits", "TransformSpec", "TransformError", "parse_spec"]

FITS = ("scale-down", "contain", "cover", "crop", "pad")
#: output formats the protocol knows; "auto" is resolved against ``accept``
FORMATS = ("auto", "webp", "jpeg", "png", "avif")
MIME = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png", "avif": "image/avif"}


class TransformError(Exception):
    """The transform cannot be done; ``status`` is the HTTP status the service answers."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)  # both in args: it crosses the process pool by pickle
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Limits:
    """Hard caps of the service; a filter may ask for lower ones, never higher."""

    max_source_bytes: int = 32 * 1024 * 1024
    max_source_pixels: int = 50_000_000
    max_width: int = 4096
    max_height: int = 4096

    def narrowed(self, query: dict[str, str]) -> "Limits":
        """Apply the per-call limits the filter sends (``max_px``, ``max_w``, ``max_h``)."""

        def pick(name: str, cap: int) -> int:
            raw = query.get(name)
            if raw is None:
                return cap
            try:
                value = int(raw)
            except ValueError:
                raise TransformError(400, f"{name}: not an integer") from None
            return cap if value <= 0 else min(value, cap)

        return Limits(self.max_source_bytes, pick("max_px", self.max_source_pixels),
                      pick("max_w", self.max_width), pick("max_h", self.max_height))


@dataclass(frozen=True)
class TransformSpec:
    width: int | None
    height: int | None
    fit: str
    format: str
    quality: int
    dpr: float
    #: formats the client accepts for ``format == "auto"`` (e.g. ("avif", "webp"))
    accept: tuple[str, ...] = ()

    @property
    def target(self) -> tuple[int | None, int | None]:
        """The requested box in device pixels (``dpr`` applied)."""
        w = round(self.width * self.dpr) if self.width else None
        h = round(self.height * self.dpr) if self.height else None
        return w, h


def _int(query: dict[str, str], name: str, lo: int, hi: int) -> int | None:
    raw = query.get(name)
    if raw in (None, "", "0"):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise TransformError(400, f"{name}: expected an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise TransformError(400, f"{name}: must be between {lo} and {hi}, got {value}")
    return value


def parse_spec(query_string: str, limits: Limits) -> TransformSpec:
    """Validate a callout query; every violation is a 400 naming the parameter."""
    query = dict(parse_qsl(query_string, keep_blank_values=True))
    fit = query.get("fit", "scale-down")
    if fit not in FITS:
        raise TransformError(400, f"fit: must be one of {', '.join(FITS)}, got {fit!r}")
    fmt = query.get("f", "auto")
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in FORMATS:
        raise TransformError(400, f"f: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    try:
        dpr = float(query.get("dpr", "1") or "1")
    except ValueError:
        raise TransformError(400, f"dpr: expected a number, got {query['dpr']!r}") from None
    if not 0.5 <= dpr <= 4:
        raise TransformError(400, f"dpr: must be between 0.5 and 4, got {dpr}")
    spec = TransformSpec(
        width=_int(query, "w", 1, limits.max_width),
        height=_int(query, "h", 1, limits.max_height),
        fit=fit,
        format=fmt,
        quality=_int(query, "q", 1, 100) or 80,
        dpr=dpr,
        accept=tuple(a for a in query.get("accept", "").split(",") if a in MIME),
    )
    tw, th = spec.target
    if (tw and tw > limits.max_width) or (th and th > limits.max_height):
        raise TransformError(400, f"output {tw or '-'}x{th or '-'} exceeds the limit "
                                  f"{limits.max_width}x{limits.max_height}")
    return spec
