"""Execution provider choice and verification, with this machine's CPU build of ONNX Runtime."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from tests.serve.conftest import ROOT, clean_env
from xstilts.contracts.providers import CPU
from xstilts.errors import XstiltsError
from xstilts.serve import providers as p
from xstilts.serve.providers import plan_providers, tensorrt_options, verify

CUDA, TRT = "CUDAExecutionProvider", "TensorrtExecutionProvider"
CPU_BUILD = ["AzureExecutionProvider", CPU]
GPU_BUILD = [TRT, CUDA, CPU]


def test_cuda_required_on_a_cpu_build_is_refused() -> None:
    with pytest.raises(XstiltsError, match="a GPU is required"):
        plan_providers(["cuda"], CPU_BUILD, require_gpu=True)
    with pytest.raises(XstiltsError, match="a GPU is required"):
        plan_providers(["tensorrt", "cuda", "cpu"], CPU_BUILD, require_gpu=True)


def test_cuda_without_requirement_falls_back_to_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "xstilts.serve"):
        plan = plan_providers(["tensorrt", "cuda"], CPU_BUILD)
    assert plan.names == [CPU] and plan.unavailable == ["tensorrt", "cuda"]
    assert "not in this onnxruntime build" in caplog.text


def test_preference_order_and_options_on_a_gpu_build(tmp_path: Path) -> None:
    execution = {
        "providers": [TRT, CUDA, CPU],
        "tensorrt": {"trt_fp16_enable": True, "trt_engine_cache_path": "trt_cache", "int8_enable": False},
        "cuda": {"device_id": 0},
    }
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    plan = plan_providers(["tensorrt", "cuda", "cpu"], GPU_BUILD, execution, True, bundle, tmp_path / "cache")
    assert plan.names == [TRT, CUDA, CPU] and plan.preferred == TRT
    trt = dict(plan.providers)[TRT]
    assert trt["trt_fp16_enable"] == "True" and trt["trt_int8_enable"] == "False"
    assert trt["trt_engine_cache_path"] == str(bundle / "trt_cache")  # relative to the bundle
    assert dict(plan.providers)[CUDA] == {"device_id": "0"}
    assert plan_providers(["cuda", "tensorrt"], GPU_BUILD).names == [CUDA, TRT, CPU]


def test_tensorrt_cache_moves_off_a_read_only_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle_cache = tmp_path / "bundle" / "trt_cache"
    bundle_cache.mkdir(parents=True)
    (bundle_cache / "calibration.flatbuffers").write_bytes(b"table")
    monkeypatch.setattr(p, "_writable", lambda folder: False)
    execution = {"tensorrt": {"trt_engine_cache_path": "trt_cache", "trt_timing_cache_path": "trt_cache"}}
    options = tensorrt_options(execution, tmp_path / "bundle", tmp_path / "cache")
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(tmp_path / "cache")
    assert (tmp_path / "cache" / "calibration.flatbuffers").read_bytes() == b"table"
    defaults = tensorrt_options({}, None, tmp_path / "cache")
    assert defaults["trt_engine_cache_enable"] == "True" and defaults["trt_engine_cache_path"] == str(
        tmp_path / "cache"
    )


def test_verify_catches_the_silent_cpu_fallback(caplog: pytest.LogCaptureFixture) -> None:
    plan = plan_providers(["cuda", "cpu"], GPU_BUILD)
    assert verify([CUDA, CPU], plan, require_gpu=True) == CUDA
    with pytest.raises(XstiltsError, match="runs the model on CPUExecutionProvider"):
        verify([CPU], plan, require_gpu=True, model="m/fp32")
    with caplog.at_level(logging.WARNING, "xstilts.serve"):
        assert verify([CPU], plan, require_gpu=False, model="m/fp32") == CPU
    assert "asked for CUDAExecutionProvider, but onnxruntime runs CPUExecutionProvider" in caplog.text


def test_a_real_session_asked_for_cuda_reports_the_cpu(repository: Path) -> None:
    from xstilts.serve.engine import load_model, plan_models
    from xstilts.serve.settings import Settings

    settings = Settings(repository=repository, providers=["cuda", "cpu"], models=["tiny-xnli=fp32"], warmup=False)
    (planned,) = plan_models(settings, CPU)
    loaded = load_model(planned, settings)
    assert loaded.provider == CPU == loaded.engine.session.get_providers()[0]
    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # this is the CPU build


def test_cli_refuses_to_start_without_the_required_gpu(repository: Path) -> None:
    env = clean_env({"XSTILTS_REPOSITORY": str(repository), "XSTILTS_PROVIDERS": "cuda", "XSTILTS_REQUIRE_GPU": "1"})
    done = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "serve", "--port", "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "a GPU is required" in done.stderr
