"""A retrieval target (``target: {task: tatoeba}``): no target phase, the encoder the intermediate phases left is
evaluated as it is, the pretrained model itself for the baseline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.training.conftest import tiny_phase, tiny_run
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.errors import XstiltsError
from xstilts.models import resolve_model
from xstilts.training.config import load_config

EVALUATION = {"task": "tatoeba", "languages": ["deu", "fra"], "max_per_language": 30}


def in_process_accuracy(folder: str | Path, layer: int, data_dir: Path) -> dict[str, float]:
    """Top-1 accuracy of ``folder``'s encoder, computed here from the retrieval modules (what the run must match)."""
    from xstilts.retrieval.embedding import Encoder, embed
    from xstilts.retrieval.evaluate import load_pairs
    from xstilts.retrieval.search import tatoeba_accuracy

    encoder, spec = Encoder(folder), EmbeddingSpec(layer=layer)
    pairs = load_pairs("tatoeba", "test", ["deu", "fra"], data_dir, 30, 0)
    return {
        lang: tatoeba_accuracy(embed(encoder, [e.text_a for e in p], spec), embed(encoder, [e.text_b for e in p], spec))
        for lang, p in pairs.items()
    }


def test_the_baseline_evaluates_the_pretrained_encoder(write_config, tmp_path, data_dir):
    from xstilts.training.pipeline import run

    config = load_config(write_config(tiny_run({"task": "tatoeba"}, evaluation=EVALUATION)))
    assert config.phases == [] and not config.trains_target
    results = run(config, tmp_path / "run", data_dir)
    measured = {lang: v["accuracy"] for lang, v in results["languages"].items()}
    assert measured == in_process_accuracy(resolve_model("tiny-xlmr"), 2, data_dir)
    assert results["metric"] == "accuracy" and results["embedding"]["layer"] == 2
    assert (tmp_path / "run" / "checkpoint").resolve() == Path(resolve_model("tiny-xlmr")).resolve()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["phases"] == []


def test_after_an_intermediate_phase_its_encoder_is_evaluated_at_the_named_layer(write_config, tmp_path, data_dir):
    from xstilts.training.pipeline import run

    phase = tiny_phase({"task": "mnli", "max_examples": 16}, steps=2, learning_rate=5e-3)
    config = load_config(write_config(tiny_run({"task": "tatoeba", "layer": 1}, phase, evaluation=EVALUATION)))
    output = tmp_path / "run"
    results = run(config, output, data_dir)
    encoder = (output / "checkpoint").resolve()
    assert encoder.parent.parent == (output / "phases").resolve()  # the phase's own checkpoint, no target phase
    assert results["embedding"]["layer"] == 1 and Path(results["model"]).resolve() == encoder
    measured = {lang: v["accuracy"] for lang, v in results["languages"].items()}
    assert measured == in_process_accuracy(encoder, 1, data_dir)
    stored = list(encoder.parent.glob("results-*.json"))  # kept in the phase folder
    assert len(stored) == 1
    os.utime(stored[0], (1, 1))
    assert run(config, output, data_dir) == results  # the stored figures of the same encoder and evaluation
    assert stored[0].stat().st_mtime == 1


@pytest.mark.parametrize(
    ("target", "intermediate", "message"),
    [
        (tiny_phase({"task": "tatoeba"}), [], "retrieval task with nothing to train on: write target: {task: tatoeba}"),
        ({"task": "pawsx"}, [], "target task pawsx needs a training phase"),
        ({"task": "tatoeba", "layers": 3}, [], "layers"),
    ],
)
def test_a_target_of_the_wrong_shape_is_a_clear_error(write_config, target, intermediate, message):
    with pytest.raises(XstiltsError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_config(write_config(tiny_run(target, *intermediate, evaluation=EVALUATION)))


def test_training_on_the_files_a_retrieval_proxy_reads_is_refused(write_config, tmp_path, data_dir):
    from xstilts.training.pipeline import run

    phase = tiny_phase({"task": "xnli", "split": "test", "languages": ["de"], "max_examples": 8})
    evaluation = {"task": "xnli_premises", "languages": ["en", "de"], "max_per_language": 8}
    config = load_config(write_config(tiny_run({"task": "xnli_premises"}, phase, evaluation=evaluation)))
    with pytest.raises(XstiltsError, match="which the xnli_premises test evaluation reads"):
        run(config, tmp_path / "run", data_dir)
