"""The ``xstilts`` command: one entry point, a subcommand per stage.

Each stage adds its own subcommands through a ``register(subparsers)`` function in its ``commands`` module;
heavy libraries are imported only inside the handlers, so ``xstilts serve`` never loads torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from xstilts import __version__
from xstilts.errors import XstiltsError

STAGES = (
    "xstilts.tasks.commands",
    "xstilts.models.commands",
    "xstilts.training.commands",
    "xstilts.export.commands",
    "xstilts.serve.commands",
    "xstilts.bench.commands",
    "xstilts.grid.commands",
    "xstilts.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xstilts", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"xstilts {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    import importlib

    for module in STAGES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except XstiltsError as exc:
        print(f"xstilts: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xstilts: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
