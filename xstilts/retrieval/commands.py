"""``xstilts eval MODEL --task tatoeba|xnli_premises|xquad_contexts|bucc2018``: retrieval figures of an encoder."""

from __future__ import annotations

import argparse

from xstilts.output import print_json, print_table
from xstilts.paths import resolve_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The embedding flags of ``xstilts eval`` (retrieval tasks only)."""
    group = parser.add_argument_group("retrieval tasks (embedding kind)")
    group.add_argument("--layer", type=int, help="hidden_states index to pool (0: embeddings; default: per model)")
    group.add_argument("--pooling", choices=("mean", "cls"), help="default: per model (mean)")
    group.add_argument("--prefix", help='text prepended to every sentence (default: per model, me5: "query: ")')


def print_results(results: dict) -> None:
    if results["metric"] == "f1":
        rows = [
            (lang, f"{100 * v['f1']:.1f}", f"{100 * v['precision']:.1f}", f"{100 * v['recall']:.1f}", v["gold"])
            for lang, v in results["languages"].items()
        ]
        rows.append(("average", f"{100 * results['average']:.1f}", "", "", ""))
        print_table(("language", "F1 %", "precision %", "recall %", "held-out gold"), rows)
    else:
        rows = [(lang, f"{100 * v['accuracy']:.1f}", v["examples"]) for lang, v in results["languages"].items()]
        rows.append(("average", f"{100 * results['average']:.1f}", ""))
        if results["average_non_english"] is not None and "en" in results["languages"]:
            rows.append(("average non-English", f"{100 * results['average_non_english']:.1f}", ""))
        print_table(("language", "top-1 accuracy %", "examples"), rows)
    e = results["embedding"]
    print(f"layer {e['layer']}, {e['pooling']} pooling, prefix {e['prefix']!r}, {results['model']}")


def run(args: argparse.Namespace) -> int:
    from xstilts.retrieval.embedding import Encoder
    from xstilts.retrieval.encoders import default_spec, encoder_folder
    from xstilts.retrieval.evaluate import evaluate_retrieval

    data_dir = resolve_data_dir(args.data_dir)
    name = str(args.checkpoint)
    folder = encoder_folder(name)
    encoder = Encoder(folder)
    spec = default_spec(name, folder, encoder.num_layers, args.layer, args.pooling, args.prefix)
    encoder.check_layer(spec.layer)
    results = evaluate_retrieval(
        encoder, args.task, spec, data_dir, args.languages, args.split, args.max_per_language, args.seed,
        args.batch_size,
    )  # fmt: skip
    if args.json:
        print_json(results)
    else:
        print_results(results)
    return 0
