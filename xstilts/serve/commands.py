"""``xstilts serve``: serve a model repository over HTTP (every flag also an ``XSTILTS_*`` variable)."""

from __future__ import annotations

import argparse

from xstilts.serve.settings import add_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve exported models over HTTP: JSON API, Open Inference Protocol (KServe v2), Prometheus metrics",
        description="Serve the bundles of a model repository. Every flag is also an environment variable "
        "XSTILTS_<FLAG> (for example --max-batch-size and XSTILTS_MAX_BATCH_SIZE); a flag wins.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from xstilts.serve.http.server import serve
    from xstilts.serve.settings import load_settings

    return serve(load_settings(args))
