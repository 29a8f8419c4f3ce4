"""``python -m edgenode.origin [flags]``: the simulated origin without the full CLI."""

import argparse

from edgenode.config import ConfigError
from edgenode.origin.app import run_origin
from edgenode.origin.settings import add_origin_arguments, settings_from_args

parser = argparse.ArgumentParser(prog="python -m edgenode.origin",
                                 description="edgenode's simulated origin (see docs/origin.md)")
add_origin_arguments(parser)
try:
    settings = settings_from_args(parser.parse_args())
except ConfigError as exc:
    parser.error(str(exc))
run_origin(settings)
