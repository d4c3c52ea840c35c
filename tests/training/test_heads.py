"""Mean-pooled heads: padding-blind pooling, training through the chain, and the same model read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import make_tiny_checkpoint
from tests.training.conftest import tiny_phase, tiny_run
from xstilts.contracts.kinds import TaskKind
from xstilts.errors import XstiltsError
from xstilts.models.heads import MeanPooledForMultipleChoice, MeanPooledForSequenceClassification, load_task_model
from xstilts.paths import resolve_data_dir
from xstilts.training.config import load_config
from xstilts.training.pipeline import run


def test_mean_pooling_ignores_padding(tmp_path: Path):
    model = load_task_model(make_tiny_checkpoint(tmp_path / "ckpt", "xnli", pooling="mean"), TaskKind.PAIR)
    short = torch.tensor([[0, 31, 42, 2]])
    long = torch.tensor([[0, 31, 42, 7, 8, 9, 10, 2]])
    padded = torch.cat([torch.nn.functional.pad(short, (0, 4), value=1), long])
    mask = torch.tensor([[1] * 4 + [0] * 4, [1] * 8])
    with torch.no_grad():
        alone = model(input_ids=short, attention_mask=torch.ones_like(short)).logits
        together = model(input_ids=padded, attention_mask=mask).logits
        unmasked = model(input_ids=padded, attention_mask=torch.ones_like(padded)).logits
    assert torch.allclose(alone[0], together[0], atol=1e-5)
    assert not torch.allclose(alone[0], unmasked[0], atol=1e-3)  # the padding would move the mean if counted


def test_mean_pooled_multiple_choice_scores_every_choice(tmp_path: Path):
    model = load_task_model(make_tiny_checkpoint(tmp_path / "ckpt", "xcopa", pooling="mean"), TaskKind.MULTIPLE_CHOICE)
    assert isinstance(model, MeanPooledForMultipleChoice)
    ids = torch.randint(5, 100, (3, 2, 10))
    output = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 1]))
    assert output.logits.shape == (3, 2) and output.loss.item() > 0


def test_mean_pooled_run_trains_carries_its_heads_and_reloads(write_config, tmp_path: Path):
    config = tiny_run(
        tiny_phase({"task": "pawsx", "max_examples": 20}),
        tiny_phase({"task": "mnli", "max_examples": 20}),
        pooling="mean",
    )
    store = tmp_path / "store"
    results = run(load_config(write_config(config)), tmp_path / "mean", resolve_data_dir(None), store)
    assert set(results["languages"]) == {"en", "de"}
    checkpoint = tmp_path / "mean" / "checkpoint"
    saved = json.loads((checkpoint / "config.json").read_text())
    assert saved["xstilts_pooling"] == "mean"
    assert saved["architectures"] == ["MeanPooledForSequenceClassification"]
    model = load_task_model(checkpoint, TaskKind.PAIR)
    assert isinstance(model, MeanPooledForSequenceClassification)
    weights = load_file(str(checkpoint / "model.safetensors"))
    assert torch.equal(model.classifier.weight, weights["classifier.weight"])
    layer = model.encoder.encoder.layer[0].output.dense.weight
    assert torch.equal(layer, weights["encoder.encoder.layer.0.output.dense.weight"])

    # The same phases with [CLS] heads are other phases: nothing trained with one pooling is reused for the other.
    cls_run = load_config(write_config({**config, "pooling": "cls"}, "cls.yaml"))
    run(cls_run, tmp_path / "cls", resolve_data_dir(None), store)
    assert len(list(store.glob("01-mnli-*"))) == 2
    cls_config = json.loads((tmp_path / "cls" / "checkpoint" / "config.json").read_text())
    assert "xstilts_pooling" not in cls_config and cls_config["architectures"] == ["BertForSequenceClassification"]


def test_unknown_pooling_is_refused(write_config):
    config = tiny_run(tiny_phase({"task": "pawsx", "max_examples": 20}), pooling="max")
    with pytest.raises(XstiltsError, match="pooling"):
        load_config(write_config(config))


def head_and_encoder_change(write_config, tmp_path: Path, name: str, **phase: float) -> tuple[float, float]:
    """How far 4 steps move the classifier's and the first layer's weights from their seeded start."""
    from transformers import set_seed

    from xstilts.models import resolve_model
    from xstilts.tasks import get_task
    from xstilts.training.model import load_encoder, task_model

    config = {**tiny_run(tiny_phase({"task": "pawsx", "max_examples": 40}, steps=4, **phase)), "pooling": "mean"}
    run(load_config(write_config(config, f"{name}.yaml")), tmp_path / name, resolve_data_dir(None))
    trained = load_file(str(tmp_path / name / "checkpoint" / "model.safetensors"))
    encoder = load_encoder(str(resolve_model("tiny-xlmr")))
    set_seed(0)  # as the phase does before building its heads
    initial = task_model(get_task("pawsx"), encoder, "mean").state_dict()
    key = "encoder.encoder.layer.0.output.dense.weight"
    head = (trained["classifier.weight"] - initial["classifier.weight"]).abs().max().item()
    return head, (trained[key] - initial[key]).abs().max().item()


def test_heads_start_from_the_phase_seed_and_train_at_their_own_learning_rate(write_config, tmp_path: Path):
    same_head, same_encoder = head_and_encoder_change(write_config, tmp_path, "same", learning_rate=1e-4)
    fast_head, fast_encoder = head_and_encoder_change(
        write_config, tmp_path, "fast", learning_rate=1e-4, head_learning_rate=1e-2
    )
    # Adam moves a weight by about the learning rate per step at most: 4 steps at 1e-4 stay below 1e-3.
    assert 0 < same_head < 1e-3 and 0 < same_encoder < 1e-3
    assert fast_head > 20 * same_head
    assert fast_encoder < 1e-3
    manifest = json.loads((tmp_path / "fast" / "manifest.json").read_text())
    assert manifest["phases"][0]["head_learning_rate"] == 1e-2
