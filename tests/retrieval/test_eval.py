"""``xstilts eval`` on retrieval tasks, as a user runs it: aliases, checkpoints, phase folders, BUCC, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.foundation.test_cli import assert_one_line_error, run
from xstilts.contracts.checkpoint import CHECKPOINT_FILE
from xstilts.contracts.embedding import EmbeddingSpec
from xstilts.paths import DATA_DIR_ENV
from xstilts.retrieval.encoders import MODEL_DEFAULTS, base_model, default_spec, encoder_folder


def eval_json(*args: str, env: dict[str, str] | None = None) -> dict:
    result = run("eval", *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_tatoeba_on_an_alias_matches_the_in_process_figure(tiny_encoder, data_dir):
    from xstilts.retrieval.embedding import embed
    from xstilts.retrieval.evaluate import load_pairs
    from xstilts.retrieval.search import tatoeba_accuracy

    results = eval_json("tiny-xlmr", "--task", "tatoeba", "--languages", "deu,fra", "--max-per-language", "40")
    assert results["metric"] == "accuracy" and list(results["languages"]) == ["deu", "fra"]
    assert results["embedding"] == {"layer": 2, "pooling": "mean", "prefix": "", "normalize": True, "dimension": 32}
    spec = EmbeddingSpec(layer=2)
    for lang, row in results["languages"].items():
        pairs = load_pairs("tatoeba", "test", [lang], data_dir, 40, 0)[lang]
        source = embed(tiny_encoder, [e.text_a for e in pairs], spec)
        target = embed(tiny_encoder, [e.text_b for e in pairs], spec)
        assert row == {"accuracy": tatoeba_accuracy(source, target), "examples": 40}
    values = [row["accuracy"] for row in results["languages"].values()]
    assert results["average"] == pytest.approx(sum(values) / 2) == results["average_non_english"]


def test_a_target_checkpoint_is_evaluated_on_its_encoder(tiny_checkpoints):
    """The tiny checkpoint is tiny-xlmr plus a head: its encoder retrieves exactly as the base does."""
    args = ("--task", "xnli_premises", "--languages", "en,de", "--max-per-language", "30", "--layer", "1")
    base = eval_json("tiny-xlmr", *args, "--pooling", "cls")
    checkpoint = eval_json(str(tiny_checkpoints["xnli"]), *args, "--pooling", "cls")
    assert checkpoint["languages"] == base["languages"]
    assert base["languages"]["en"]["accuracy"] == 1.0  # English against itself
    assert checkpoint["embedding"]["layer"] == 1 and checkpoint["embedding"]["pooling"] == "cls"


def write_bucc(folder: Path, german: list[str], english: list[str]) -> None:
    """A mining corpus whose German side repeats 20 English sentences verbatim (shuffled ids) among distractors."""
    bucc = folder / "bucc2018"
    bucc.mkdir(parents=True)
    source = [f"de-{i}\t{text}" for i, text in enumerate(english[:20] + german[20:40])]
    target = [f"en-{100 + i}\t{text}" for i, text in enumerate(reversed(english[:20] + english[40:60]))]
    gold = [f"de-{i}\ten-{100 + 39 - i}" for i in range(20)]
    for suffix, lines in (("de", source), ("en", target), ("gold", gold)):
        (bucc / f"de-en.test.{suffix}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_bucc_mining_through_the_cli(data_dir, tmp_path, tiny_encoder):
    from xstilts.tasks import get_task, load_examples

    pairs = load_examples(get_task("tatoeba"), "test", "deu", data_dir)
    write_bucc(tmp_path, [e.text_a for e in pairs], [e.text_b for e in pairs])
    results = eval_json("tiny-xlmr", "--task", "bucc2018", env={DATA_DIR_ENV: str(tmp_path)})
    assert results["metric"] == "f1" and list(results["languages"]) == ["de"]
    row = results["languages"]["de"]
    # identical texts get identical vectors, so even a random encoder mines exactly the gold pairs
    assert (row["f1"], row["precision"], row["recall"]) == (1.0, 1.0, 1.0)
    assert row["sentences"] == {"source": 40, "target": 40} and 5 <= row["gold"] <= 15
    table = run("eval", "tiny-xlmr", "--task", "bucc2018", env={DATA_DIR_ENV: str(tmp_path)})
    assert "F1 %" in table.stdout and "100.0" in table.stdout


def test_bad_input_is_a_one_line_error(tmp_path):
    assert_one_line_error(
        run("eval", "tiny-xlmr", "--task", "tatoeba", "--languages", "swh"), "no language swh", "ara, cmn, deu, fra"
    )
    assert_one_line_error(run("eval", "tiny-xlmr", "--task", "tatoeba", "--layer", "7"), "not layer 7")
    assert_one_line_error(run("eval", str(tmp_path / "absent"), "--task", "tatoeba"), "does not exist")
    assert_one_line_error(
        run("eval", "tiny-xlmr", "--task", "bucc2018", env={DATA_DIR_ENV: str(tmp_path)}),
        "bucc2018 test (de) not found",
        "de-en.test.de",
    )


def test_model_defaults_follow_the_base_model_through_checkpoints_and_phases(tmp_path, tiny_checkpoints):
    me5_prefix, me5_pooling, me5_layer = MODEL_DEFAULTS["me5-small"]
    assert me5_prefix == "query: " and me5_pooling == "mean"
    folder = tmp_path / "cache" / "me5-small"
    assert base_model("me5-small", folder) == base_model("me5-small@6L", folder) == "me5-small"
    spec = default_spec("me5-small@6L", folder, num_layers=6)
    assert (spec.prefix, spec.pooling, spec.layer) == ("query: ", "mean", min(me5_layer, 6))
    # a target checkpoint trained from me5-small
    checkpoint = tmp_path / "run" / "checkpoint"
    shutil.copytree(tiny_checkpoints["xnli"], checkpoint)
    info = json.loads((checkpoint / CHECKPOINT_FILE).read_text())
    (checkpoint / CHECKPOINT_FILE).write_text(json.dumps({**info, "lineage": {"model": "me5-small"}}))
    assert default_spec(str(checkpoint), checkpoint, 12).prefix == "query: "
    # a second phase folder, whose phase started from the first, which started from the model
    first, second = tmp_path / "phases" / "00-a", tmp_path / "phases" / "01-b"
    for phase, start in ((first, folder), (second, first / "checkpoint")):
        shutil.copytree(tiny_checkpoints["xnli"], phase / "checkpoint")
        (phase / "checkpoint" / CHECKPOINT_FILE).unlink()
        (phase / "phase.json").write_text(json.dumps({"start": str(start)}))
    assert encoder_folder(str(second)) == second / "checkpoint"
    assert base_model(str(second), second / "checkpoint") == "me5-small"
    explicit = default_spec(str(second), second / "checkpoint", 12, layer=3, pooling="cls", prefix="")
    assert (explicit.prefix, explicit.pooling, explicit.layer) == ("", "cls", 3)
    assert default_spec("tiny-xlmr", Path("tiny-xlmr"), 2).prefix == ""


@pytest.mark.slow
def test_me5_small_retrieves_german_and_french_tatoeba(me5_folder):
    """multilingual-e5 was trained on translation pairs: far below 80% means pooling, prefix or padding is wrong."""
    results = eval_json("me5-small", "--task", "tatoeba", "--languages", "deu,fra", "--max-per-language", "300")
    assert results["embedding"]["prefix"] == "query: "
    for lang, row in results["languages"].items():
        assert row["accuracy"] >= 0.8, (lang, row)
