"""Execution provider choice and verification, with this machine's CPU build of ONNX Runtime."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import onnxruntime as ort
import pytest
import tomllib

from tests.serve.conftest import ROOT, ServerProcess, clean_env, metric_samples
from xstilts.contracts.bundle import TensorRTProfile
from xstilts.contracts.providers import CPU
from xstilts.errors import XstiltsError
from xstilts.serve.core import providers as p
from xstilts.serve.core.providers import ProviderPlan, plan_providers, session_providers, tensorrt_options, verify

CUDA, TRT = "CUDAExecutionProvider", "TensorrtExecutionProvider"
CPU_BUILD = ["AzureExecutionProvider", CPU]
GPU_BUILD = [TRT, CUDA, CPU]
# ONNX Runtime's documented option names (see the file for its sources)
DOCUMENTED = tomllib.loads((Path(__file__).parent / "ort_provider_options.toml").read_text(encoding="utf-8"))


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
    plan = plan_providers(["tensorrt", "cuda", "cpu"], GPU_BUILD, require_gpu=True)
    assert plan.names == [TRT, CUDA, CPU] and plan.preferred == TRT
    providers = session_providers(plan, execution, bundle, tmp_path / "cache")
    assert [name for name, _ in providers] == plan.names
    trt = dict(providers)[TRT]
    assert trt["trt_fp16_enable"] == "True" and trt["trt_int8_enable"] == "False"
    assert trt["trt_engine_cache_path"] == str(bundle / "trt_cache")  # relative to the bundle
    assert dict(providers)[CUDA] == {"device_id": "0"}
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
    from xstilts.serve.core.engine import load_model
    from xstilts.serve.core.repository import plan_models
    from xstilts.serve.settings import Settings

    settings = Settings(repository=repository, providers=["cuda", "cpu"], models=["tiny-xnli=fp32"], warmup=False)
    (planned,) = plan_models(settings)
    loaded = load_model(planned, settings)
    assert loaded.provider == CPU == loaded.engine.session.get_providers()[0]
    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # this is the CPU build


@pytest.mark.parametrize("providers", ["cuda", "cuda,cpu"])
def test_cli_refuses_to_start_without_the_required_gpu(repository: Path, providers: str) -> None:
    env = clean_env({"XSTILTS_REPOSITORY": str(repository), "XSTILTS_PROVIDERS": providers, "XSTILTS_REQUIRE_GPU": "1"})
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


def test_a_real_session_given_cuda_first_falls_back_and_verify_sees_it(
    repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """This CPU build, asked for CUDA first, really falls back (as a GPU build without its CUDA libraries does)."""
    assert CUDA not in ort.get_available_providers()
    model = repository / "tiny-xnli" / "fp32" / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnxruntime's own warning about the missing provider
        running = ort.InferenceSession(str(model), providers=[CUDA, CPU]).get_providers()
    assert running[0] == CPU
    plan = ProviderPlan([CUDA, CPU], ["cuda", "cpu"])
    with pytest.raises(XstiltsError, match="runs the model on CPUExecutionProvider"):
        verify(running, plan, require_gpu=True, model="tiny-xnli/fp32")
    with caplog.at_level(logging.WARNING, "xstilts.serve"):
        assert verify(running, plan, require_gpu=False, model="tiny-xnli/fp32") == CPU
    assert "asked for CUDAExecutionProvider, but onnxruntime runs CPUExecutionProvider" in caplog.text


def test_a_server_asked_for_cuda_first_serves_on_the_cpu_and_says_so(repository: Path, tmp_path: Path) -> None:
    env = {"XSTILTS_PROVIDERS": "cuda,cpu", "XSTILTS_MODELS": "tiny-xnli"}
    server = ServerProcess(repository, tmp_path / "server.log", env).start()
    try:
        assert httpx.get(f"{server.url}/v1/models/tiny-xnli").json()["provider"] == CPU
        info = metric_samples(httpx.get(f"{server.url}/metrics").text, "xstilts_model_info")
        assert [dict(labels)["provider"] for labels in info] == [CPU]
        body = {"inputs": ["Still answers on the CPU."]}
        assert httpx.post(f"{server.url}/v1/models/tiny-xnli/predict", json=body, timeout=60).status_code == 200
    finally:
        assert server.stop() == 0, server.logs()
    assert "execution providers cuda are not in this onnxruntime build" in server.logs()


def test_the_provider_options_written_are_documented(tmp_path: Path) -> None:
    """Every TensorRT and CUDA option name the code writes is one ONNX Runtime documents (not the code's own list)."""
    from xstilts.export.variants import VARIANTS

    written = set(tensorrt_options({}, None, tmp_path / "cache"))  # the server's defaults
    for variant in VARIANTS.values():
        written |= set(tensorrt_options({"tensorrt": variant.tensorrt}, tmp_path, tmp_path / "cache"))
    profile = TensorRTProfile((1, 8, 32), (1, 64, 128))
    written |= set(profile.provider_options(["input_ids", "attention_mask"], None))
    assert {"trt_engine_cache_path", "trt_timing_cache_path", "trt_int8_enable", "trt_profile_max_shapes"} <= written
    assert sorted(written - set(DOCUMENTED["tensorrt"])) == []
    cuda = dict(session_providers(plan_providers(["cuda"], GPU_BUILD), {"cuda": {"device_id": 0}}))[CUDA]
    assert cuda and sorted(set(cuda) - set(DOCUMENTED["cuda"])) == []
