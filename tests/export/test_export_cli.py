"""``xstilts export`` end to end, and its refusals: one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from xstilts.cli import main
from xstilts.export.graph import file_digests
from xstilts.export.hardware import missing_gpu
from xstilts.models import resolve_model


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["export", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture, repository: Path, *argv: str) -> str:
    code, out, err = run(capsys, *argv, "--repository", str(repository))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("xstilts: error: ")
    return err


def test_export_and_measure_multiple_choice(
    capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], data_dir: Path, tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys,
        str(tiny_checkpoints["xcopa"]),
        *("--repository", str(tmp_path), "--name", "copa", "--variants", "fp32,int8", "--data-dir", str(data_dir)),
        *("--parity-examples", "4", "--max-accuracy-drop", "100", "--measure", "--measure-seconds", "0.05", "--json"),
    )
    assert code == 0
    report = json.loads(out)
    assert set(report["bundles"]) == {"fp32", "int8"}
    assert report["bundles"]["fp32"]["parity"].startswith("passed: accuracy")
    rows = {row["variant"]: row for row in report["measurements"]}
    assert set(rows["int8"]["sequences_per_s"]) == {"b1_len64", "b16_len64", "b1_len128", "b16_len128"}
    assert all(speed > 0 for row in rows.values() for speed in row["sequences_per_s"].values())


def test_not_a_checkpoint(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    err = refused(capsys, tmp_path / "repo", str(tmp_path / "empty"), "--name", "x")
    assert "no config.json" in err
    err = refused(capsys, tmp_path / "repo", resolve_model("tiny-xlmr"), "--name", "x")
    assert "xstilts_checkpoint.json" in err
    err = refused(capsys, tmp_path / "repo", str(tmp_path / "missing"), "--name", "x")
    assert "is not a folder" in err
    assert not (tmp_path / "repo").exists()


def test_checkpoint_without_fast_tokenizer(
    capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = shutil.copytree(tiny_checkpoints["xnli"], tmp_path / "slow-only")
    (checkpoint / "tokenizer.json").unlink()
    assert "has no tokenizer.json" in refused(capsys, tmp_path / "repo", str(checkpoint), "--name", "x")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    ("variants", "expected"),
    [("fp32,bf16", "unknown variant bf16"), ("int8,int8", "given more than once"), (",", "no variants given")],
)
def test_bad_variants(
    capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], tmp_path: Path, variants: str, expected: str
) -> None:
    err = refused(capsys, tmp_path, str(tiny_checkpoints["xnli"]), "--name", "x", "--variants", variants)
    assert expected in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(missing_gpu() is None, reason="this machine has a CUDA GPU, so O4 can be built")
def test_o4_is_refused_without_a_gpu(
    capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    err = refused(capsys, tmp_path, str(tiny_checkpoints["xnli"]), "--name", "x", "--variants", "fp32,O4")
    assert "variant O4 needs a CUDA GPU to build" in err and "CUDAExecutionProvider" in err
    assert list(tmp_path.iterdir()) == []


def test_existing_name_is_refused_and_left_alone(
    capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], tiny_repository: Path
) -> None:
    before = file_digests(tiny_repository / "tiny-xnli")
    err = refused(capsys, tiny_repository, str(tiny_checkpoints["xnli"]), "--name", "tiny-xnli")
    assert "already exists" in err
    assert file_digests(tiny_repository / "tiny-xnli") == before


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", ""])
def test_bad_names(capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], tmp_path: Path, name: str) -> None:
    assert "bundle name" in refused(capsys, tmp_path / "repo", str(tiny_checkpoints["xnli"]), "--name", name)
    assert not (tmp_path / "repo").exists() and not (tmp_path / "escape").exists()


def test_bad_trt_profile(capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    err = refused(capsys, tmp_path, str(tiny_checkpoints["xnli"]), "--name", "x", "--trt-batch", "8,4,32")
    assert "TensorRT batch profile" in err


def test_labels_that_disagree_with_the_head(
    capsys: pytest.CaptureFixture, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = shutil.copytree(tiny_checkpoints["xnli"], tmp_path / "swapped")
    config = json.loads((checkpoint / "config.json").read_text())
    config["id2label"] = {"0": "neutral", "1": "entailment", "2": "contradiction"}
    (checkpoint / "config.json").write_text(json.dumps(config))
    assert "id2label" in refused(capsys, tmp_path / "repo", str(checkpoint), "--name", "x")
    assert not (tmp_path / "repo").exists()


def test_the_parity_line_of_a_tagging_gate_with_an_f1_metric():
    """A NER gate records metric f1 like the QA gate, but no span agreement: its line names the tag agreement."""
    from xstilts.export.commands import _parity_line

    parity = {
        "status": "passed",
        "metric": "f1",
        "average_accuracy": {"reference": 0.5855, "variant": 0.5757},
        "label_agreement": 0.957,
        "max_abs_logit_diff": 3.97,
    }
    assert _parity_line(parity) == "passed: f1 57.57% vs 58.55%, agreement 95.7%, max |logit diff| 4"
    qa = {**parity, "span_agreement": 0.9}
    assert "span agreement 90.0%" in _parity_line(qa)
