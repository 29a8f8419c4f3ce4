"""``edgenode filter new``: a filter project from the templates in ``templates/<lang>/``.

Every project gets a filter.toml (build output, config example, case files), a case file
for ``edgenode filter test`` and a pytest file for the ``filter`` fixture; it builds and
its tests pass as generated.  C projects get a copy of the edgenode C SDK (``sdk/``) so
they build anywhere, without this checkout; AssemblyScript projects pin their npm
packages in package-lock.json.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Callable

from edgenode.config import ConfigError
from edgenode.devkit.manifest import NAME_RE
from edgenode.devkit.templates import copy_tree
from edgenode.filterdev.project import LANGS

__all__ = ["new_project", "c_sdk_dir"]


def c_sdk_dir() -> Path:
    """The edgenode C SDK (``filters/sdk`` of the checkout, or ``$EDGENODE_C_SDK``)."""
    env = os.environ.get("EDGENODE_C_SDK")
    sdk = Path(env) if env else Path(__file__).resolve().parents[2] / "filters" / "sdk"
    if not (sdk / "proxy_wasm.h").is_file():
        raise ConfigError(f"cannot find the edgenode C SDK at {sdk}: set EDGENODE_C_SDK to the "
                          "directory holding proxy_wasm.h (filters/sdk in the edgenode source)")
    return sdk


def _renderer(name: str) -> Callable[[str], str]:
    """Fills ``{{name}}``, and ``{{ident}}``/``{{Ident}}`` where code needs an identifier."""
    ident = name.replace("-", "_")
    camel = "".join(part.capitalize() for part in ident.split("_"))
    return lambda text: text.replace("{{name}}", name).replace("{{ident}}", ident).replace("{{Ident}}", camel)


def new_project(name: str, lang: str, dest: Path | None = None) -> list[Path]:
    """Create the project in ``dest`` (default ./NAME); returns the files written."""
    if not NAME_RE.match(name):
        raise ConfigError(f"NAME: use lower-case letters, digits, '-' or '_', starting with a letter; got {name!r}")
    if lang not in LANGS:
        raise ConfigError(f"--lang: must be one of {', '.join(LANGS)}, got {lang!r}")
    dest = dest or Path.cwd() / name
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"--dir: {dest} already exists and is not empty")
    sdk = c_sdk_dir() if lang == "c" else None
    dest.mkdir(parents=True, exist_ok=True)
    templates = resources.files("edgenode.filterdev") / "templates"
    render = _renderer(name)
    written = copy_tree(templates / "common", dest, render) + copy_tree(templates / lang, dest, render)
    if sdk is not None:
        (dest / "sdk").mkdir()
        for f in sorted(sdk.iterdir()):
            if f.suffix in (".c", ".h"):
                written.append(Path(shutil.copy2(f, dest / "sdk" / f.name)))
    return sorted(written)
