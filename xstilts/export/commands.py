"""``xstilts export``: a checkpoint into a model bundle; ``--measure`` prints each variant's size and speed here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.export.embedding_parity import LANGUAGES
from xstilts.export.quantize import CALIBRATION_METHODS
from xstilts.export.variants import VARIANTS
from xstilts.output import print_json, print_table
from xstilts.tasks.commands import add_data_dir


def _triple(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected MIN,OPT,MAX as three integers, got {text!r}")
    return values  # type: ignore[return-value]


def register(subparsers) -> None:
    listing = "\n".join(f"  {v.name:<9} {v.summary}" for v in VARIANTS.values())
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX bundles (fp32, int8, fp16, O1-O4, TensorRT), gated on parity",
        description="Write REPOSITORY/NAME/<variant>/ for each variant: model.onnx, tokenizer files and bundle.json.",
        epilog=f"variants:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT_OR_MODEL",
        help="a target checkpoint folder written by 'xstilts train'; with --kind embedding, also a model alias "
        "(me5-small) or a phase folder (its encoder)",
    )
    parser.add_argument("--repository", type=Path, required=True, help="the model repository folder")
    parser.add_argument("--name", required=True, help="the bundle's name in the repository (must not exist yet)")
    parser.add_argument("--variants", default="fp32,int8", help="comma-separated variants (default: fp32,int8)")
    add_data_dir(parser)
    embedding = parser.add_argument_group("embedding bundles (--kind embedding)")
    embedding.add_argument(
        "--kind", choices=(TaskKind.EMBEDDING.value,), help="export the encoder's sentence vectors, not the head"
    )
    embedding.add_argument(
        "--layer", type=int, help="hidden state to pool: 0 embeddings .. N last (default: the model's measured best)"
    )
    embedding.add_argument("--pooling", choices=("mean", "cls"), help="default: the model's (mean)")
    embedding.add_argument(
        "--prefix", help="prepended to every text by the server (default: the model's, e5: 'query: ')"
    )
    embedding.add_argument("--no-normalize", action="store_true", help="raw vectors, not scaled to unit length")
    embedding.add_argument("--max-length", type=int, help="token limit (default: the encoder's, at most 512)")
    embedding.add_argument(
        "--languages", default=",".join(LANGUAGES), help="XNLI languages retrieved against English by the gate"
    )
    gate = parser.add_argument_group("parity gate")
    gate.add_argument("--parity-examples", type=int, default=200, help="items per language (default: 200)")
    gate.add_argument(
        "--max-accuracy-drop", type=float, default=1.0, help="budget in accuracy points, averaged over languages"
    )
    gate.add_argument("--keep-failed", action="store_true", help="keep variants that fail the gate, marked as such")
    gate.add_argument("--seed", type=int, default=0, help="seed of the parity sample")
    build = parser.add_argument_group("building")
    build.add_argument("--opset", type=int, help="ONNX opset (default: optimum's for the architecture)")
    build.add_argument(
        "--int8-target",
        choices=("avx512_vnni", "avx512", "avx2", "arm64"),
        help="the serving CPU's instructions for int8 (default: this machine's)",
    )
    build.add_argument("--per-tensor", action="store_true", help="int8 scales per tensor, not per channel")
    build.add_argument(
        "--calibration-examples",
        type=int,
        default=128,
        help="calibration items: trt-int8 (English training inputs), int8-static (evaluation items across the "
        "gated languages, outside the parity sample) (default: 128)",
    )
    build.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default="minmax",
        help="how int8-static turns calibration activations into ranges (default: minmax)",
    )
    build.add_argument("--trt-batch", type=_triple, help="TensorRT profile batch MIN,OPT,MAX (default: 1,8,32)")
    build.add_argument(
        "--trt-sequence", type=_triple, help="TensorRT profile length MIN,OPT,MAX (default: 1,128,max length)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--measure", action="store_true", help="then measure size, load time and throughput here")
    output.add_argument("--measure-seconds", type=float, default=3.0, help="time per throughput cell (default: 3)")
    output.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from xstilts.contracts.bundle import load_manifest
    from xstilts.export.measure import measure_bundles

    folders = _export_embedding(args) if args.kind else _export_checkpoint(args)
    report: dict[str, Any] = {"bundles": {}}
    for folder in folders:
        manifest = load_manifest(folder)
        report["bundles"][manifest.variant] = {"folder": str(folder), "parity": _parity_line(manifest.parity)}
    if args.measure:
        report["measurements"] = measure_bundles(folders, seconds=args.measure_seconds)
    if args.json:
        print_json(report)
        return 0
    print_table(("variant", "folder", "parity"), [(v, b["folder"], b["parity"]) for v, b in report["bundles"].items()])
    if args.measure:
        print()
        print_measurements(report["measurements"])
    return 0


def _export_checkpoint(args: argparse.Namespace) -> list[Path]:
    from xstilts.export.pipeline import export_checkpoint

    embedding_only = [f"--{n.replace('_', '-')}" for n in ("layer", "max_length") if getattr(args, n) is not None]
    if embedding_only:
        raise XstiltsError(f"{', '.join(embedding_only)} only apply to --kind embedding")
    return export_checkpoint(
        Path(args.checkpoint),
        args.repository,
        args.name,
        args.variants,
        **_shared_options(args),
        calibration_examples=args.calibration_examples,
        calibration_method=args.calibration_method,
        trt_batch=args.trt_batch,
        trt_sequence=args.trt_sequence,
    )


def _export_embedding(args: argparse.Namespace) -> list[Path]:
    from xstilts.export.embedding import export_embedding, resolve_encoder_folder
    from xstilts.retrieval.encoders import default_spec

    folder = resolve_encoder_folder(args.checkpoint)
    layers = int(json.loads((folder / "config.json").read_text())["num_hidden_layers"])
    spec = default_spec(
        str(args.checkpoint), folder, layers, args.layer, args.pooling, args.prefix, normalize=not args.no_normalize
    )
    return export_embedding(
        args.checkpoint,
        args.repository,
        args.name,
        spec,
        args.variants,
        **_shared_options(args),
        languages=[lang.strip() for lang in args.languages.split(",") if lang.strip()],
        max_length=args.max_length,
    )


def _shared_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data, gate and build options both kinds of export take."""
    return {
        "data_dir": args.data_dir,
        "parity_examples": args.parity_examples,
        "max_accuracy_drop": args.max_accuracy_drop,
        "keep_failed": args.keep_failed,
        "seed": args.seed,
        "opset": args.opset,
        "int8_target": args.int8_target,
        "per_channel": not args.per_tensor,
    }


def _parity_line(parity: dict[str, Any]) -> str:
    if parity["status"] == "skipped":
        graph = parity.get("graph_on_cpu")
        checked = f"; graph on CPU agrees on {graph['label_agreement']:.1%} of labels" if graph else ""
        return f"skipped ({parity['reason']}){checked}"
    averages = parity["average_accuracy"]
    kept = ", KEPT DESPITE FAILURE" if parity.get("kept_despite_failure") else ""
    if "cosine" in parity:
        cosine = parity["cosine"]
        return (
            f"{parity['status']}{kept}: top-1 retrieval {averages['variant']:.2%} vs {averages['reference']:.2%}, "
            f"cosine to PyTorch mean {cosine['mean']:.5f}, min {cosine['min']:.5f}"
        )
    diff = parity["max_abs_logit_diff"]
    if "span_agreement" in parity:  # extractive QA (a tagging gate's metric may be f1 as well)
        return (
            f"{parity['status']}{kept}: F1 {averages['variant']:.2%} vs {averages['reference']:.2%}, "
            f"span agreement {parity['span_agreement']:.1%}, "
            f"max |logit diff| {'not finite' if diff is None else f'{diff:.2g}'}"
        )
    return (
        f"{parity['status']}{kept}: {parity.get('metric', 'accuracy')} {averages['variant']:.2%} vs "
        f"{averages['reference']:.2%}, "
        f"agreement {parity['label_agreement']:.1%}, max |logit diff| {'not finite' if diff is None else f'{diff:.2g}'}"
    )


def print_measurements(rows: list[dict[str, Any]]) -> None:
    """The measurement table: size, load time and sequences per second per batch and length."""
    cells = sorted({cell for row in rows for cell in row.get("sequences_per_s", {})}, key=_cell_order)
    table = []
    for row in rows:
        speeds = row.get("sequences_per_s", {})
        load = f"{row['load_s']:.2f}" if "load_s" in row else "-"
        measured = [f"{speeds[c]:.1f}" if c in speeds else "-" for c in cells]
        table.append((row["variant"], f"{row['file_mb']:.1f}", load, *measured, row.get("skipped", "")))
    headers = ("variant", "MB", "load s", *(f"seq/s {c.replace('_', ' ')}" for c in cells), "note")
    print_table(headers, table)


def _cell_order(cell: str) -> tuple[int, int]:
    batch, length = cell.removeprefix("b").split("_len")
    return int(length), int(batch)


def _quiet_libraries() -> None:
    """Progress lines of our own on stderr; the libraries' tracer warnings and chatter are not for users."""
    import logging
    import warnings

    try:
        from torch.jit import TracerWarning
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise XstiltsError(f"export needs the export extra: pip install 'xstilts[train,export]' ({exc})") from None
    warnings.filterwarnings("ignore", category=TracerWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
    hf_logging.set_verbosity_error()
    for name in ("optimum", "onnxruntime"):
        logging.getLogger(name).setLevel(logging.ERROR)
    progress = logging.getLogger("xstilts.export")
    if not progress.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("xstilts export: %(message)s"))
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)
        progress.propagate = False
