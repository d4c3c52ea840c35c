"""The layer sweep: top-1 retrieval accuracy of an encoder at every layer, each from one forward pass.

``python -m xstilts.retrieval.sweep me5-small --tasks tatoeba,xnli_premises --max-per-language 1000
--output docs/results/retrieval/me5-small-layers.json`` (the measurement behind ``MODEL_DEFAULTS``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from xstilts.atomic import write_json_atomic
from xstilts.errors import XstiltsError
from xstilts.paths import resolve_data_dir
from xstilts.retrieval.embedding import Encoder
from xstilts.retrieval.encoders import default_spec, encoder_folder
from xstilts.retrieval.evaluate import accuracy_by_layer, load_pairs
from xstilts.tasks import get_task, non_english_average, resolve_languages


def sweep(name: str, tasks: list[str], data_dir: Path, limit: int | None, seed: int, batch_size: int) -> dict:
    """Accuracy per task, layer and language, with averages and each task's best layer (by non-English average)."""
    folder = encoder_folder(name)
    encoder = Encoder(folder)
    spec = default_spec(name, folder, encoder.num_layers)
    layers = list(range(encoder.num_layers + 1))
    results: dict[str, Any] = {}
    for task in tasks:
        split = get_task(task).eval_split
        langs = resolve_languages(get_task(task), split, "all", data_dir)
        pairs = load_pairs(task, split, langs, data_dir, limit, seed)
        started = time.time()
        by_layer = accuracy_by_layer(encoder, pairs, layers, spec.pooling, spec.prefix, batch_size)
        table = {
            str(layer): {
                "languages": acc,
                "average": sum(acc.values()) / len(acc),
                "average_non_english": non_english_average(acc),
            }
            for layer, acc in by_layer.items()
        }
        best = max(table, key=lambda layer: table[layer]["average_non_english"] or table[layer]["average"])
        results[task] = {
            "split": split,
            "examples": {lang: len(ex) for lang, ex in pairs.items()},
            "layers": table,
            "best_layer": int(best),
            "wall_time_s": round(time.time() - started, 1),
        }
    return {
        "model": name,
        "folder_name": Path(folder).name,
        "embedding": {"pooling": spec.pooling, "prefix": spec.prefix, "normalize": True, "layers": layers},
        "sample": {
            "per_language": limit,
            "seed": seed,
            "note": "seeded positions; null: all items",
        },
        "data": {task: f"{task} {results[task]['split']} from the data folder (../shared/data)" for task in tasks},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "device": str(encoder.model.device),
            "description": f"{os.cpu_count()}-core CPU VM, no GPU" if encoder.model.device.type == "cpu" else "",
            "python": platform.python_version(),
        },
        "tasks": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xstilts.retrieval.sweep", description=__doc__)
    parser.add_argument("model", help="model alias, model folder, phase folder or target checkpoint")
    parser.add_argument("--tasks", default="tatoeba,xnli_premises")
    parser.add_argument("--max-per-language", type=int, help="a seeded sample per language (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-dir")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        data_dir = resolve_data_dir(args.data_dir)
        result = sweep(args.model, args.tasks.split(","), data_dir, args.max_per_language, args.seed, args.batch_size)
    except XstiltsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output, result)
    for task, entry in result["tasks"].items():
        print(f"{task}: best layer {entry['best_layer']}")
        for layer, row in entry["layers"].items():
            cells = " ".join(f"{lang}={100 * v:.1f}" for lang, v in row["languages"].items())
            print(f"  layer {layer:>2}: average {100 * row['average']:.1f}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
