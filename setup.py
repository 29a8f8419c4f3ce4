"""Build hook for the C extensions declared in pyproject.toml (``ext-modules``).

The Proxy-Wasm host core writes a filter's added field and reads a field map's version
through multidict's C API (``multidict_capi.h``, shipped inside the multidict package),
so its build needs that package directory on the include path.  Under pip's build
isolation multidict is not importable, so the directory is also looked for where this
interpreter installs packages (the environment the extension runs in).  Without the
header the core is built without the C API and makes the Python calls instead.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

#: the extension that uses multidict's C API
HOSTCORE = "edgenode.wasm._hostcore"


def multidict_include() -> str | None:
    """The multidict package directory holding ``multidict_capi.h``, or None."""
    candidates: list[Path] = []
    try:
        import multidict  # noqa: PLC0415 - optional at build time
        candidates.extend(Path(p) for p in multidict.__path__)
    except ImportError:
        pass
    for key in ("platlib", "purelib"):
        candidates.append(Path(sysconfig.get_path(key)) / "multidict")
    for path in candidates:
        if (path / "multidict_capi.h").is_file():
            return str(path)
    return None


class BuildExt(build_ext):
    """``build_ext`` that gives the host core multidict's C API when the header is there."""

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        if ext.name == HOSTCORE:
            include = multidict_include()
            if include is not None:
                ext.include_dirs.append(include)
                ext.define_macros.append(("HC_MULTIDICT_CAPI", "1"))
        super().build_extension(ext)


setup(cmdclass={"build_ext": BuildExt})
