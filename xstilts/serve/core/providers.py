"""Execution providers: which to ask ONNX Runtime for, with which options, and which one it really runs.

:func:`plan_providers` runs once at start-up (the providers this build has, in the order asked for);
:func:`session_providers` adds each bundle's options to that plan. ONNX Runtime quietly falls back to the CPU
when a GPU provider cannot load (no CUDA libraries, no device), so the server never trusts the request: after a
session is created, :func:`verify` reads ``session.get_providers()`` and either reports the provider that runs
or, when a GPU was required, refuses.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xstilts.contracts.providers import CPU, CUDA, GPU_PROVIDERS, TENSORRT, Provider
from xstilts.errors import XstiltsError
from xstilts.serve.settings import Settings

log = logging.getLogger("xstilts.serve")


@dataclass
class ProviderPlan:
    """The providers to ask ONNX Runtime for, best first (the CPU last), and those asked for but not in this build.

    Planned once at start-up, for every model: the options of each provider come from each bundle
    (:func:`session_providers`).
    """

    names: list[str]
    requested: list[str]
    unavailable: list[str] = field(default_factory=list)

    @property
    def preferred(self) -> str:
        return self.names[0]


def _option_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def tensorrt_options(
    execution: Mapping[str, Any], bundle_folder: Path | None = None, cache_dir: Path | None = None
) -> dict[str, str]:
    """ONNX Runtime's TensorRT options from a bundle's ``execution["tensorrt"]`` (the ``trt_`` prefix optional).

    Relative paths (the engine cache, which also holds an int8 calibration table) are resolved against the bundle
    folder. When that cache is not writable (a read-only volume), it is copied to ``cache_dir`` and used from
    there, since TensorRT writes its engines next to the table. Without settings, the cache lives in ``cache_dir``.
    """
    options: dict[str, str] = {}
    for key, value in dict(execution.get("tensorrt") or {}).items():
        options[key if key.startswith("trt_") else f"trt_{key}"] = _option_value(value)
    for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
        if key in options and bundle_folder is not None and not Path(options[key]).is_absolute():
            options[key] = str(bundle_folder / options[key])
    if "trt_engine_cache_path" not in options and cache_dir is not None:
        options.update(trt_engine_cache_enable="True", trt_engine_cache_path=str(cache_dir))
        options.update(trt_timing_cache_enable="True", trt_timing_cache_path=str(cache_dir))
    engine_cache = Path(options.get("trt_engine_cache_path", ""))
    movable = cache_dir is not None and options.get("trt_engine_cache_path") and engine_cache != cache_dir
    if movable and not _writable(engine_cache):
        if engine_cache.is_dir():
            shutil.copytree(engine_cache, cache_dir, dirs_exist_ok=True)
        log.info("TensorRT cache %s is not writable: using a copy in %s", engine_cache, cache_dir)
        for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
            if options.get(key) == str(engine_cache):
                options[key] = str(cache_dir)
    return options


def _writable(folder: Path) -> bool:
    if folder.is_dir():
        return os.access(folder, os.W_OK)
    parent = folder.parent
    return parent.is_dir() and os.access(parent, os.W_OK)


def cuda_options(execution: Mapping[str, Any]) -> dict[str, str]:
    """ONNX Runtime's CUDA options from a bundle's ``execution["cuda"]``, passed through."""
    return {key: _option_value(value) for key, value in dict(execution.get("cuda") or {}).items()}


def plan_providers(requested: Sequence[str], available: Sequence[str], require_gpu: bool = False) -> ProviderPlan:
    """The providers to create sessions with, in ``requested`` order, keeping those this build has.

    ``requested`` holds short names (tensorrt, cuda, cpu); ``available`` is ``onnxruntime.get_available_providers()``.
    The CPU always comes last, as ONNX Runtime's fallback for the nodes a GPU provider does not take (whether a
    whole graph fell back is what :func:`verify` checks). Raises when a GPU is required and this build has no GPU
    provider at all.
    """
    chosen: list[str] = []
    unavailable: list[str] = []
    for short in requested:
        try:
            name = Provider(short).ort_name
        except ValueError:
            raise XstiltsError(
                f"unknown execution provider {short!r}: use {', '.join(p.value for p in Provider)}"
            ) from None
        if name in available:
            chosen.append(name)
        else:
            unavailable.append(short)
    if require_gpu and not any(name in GPU_PROVIDERS for name in chosen):
        raise XstiltsError(
            f"a GPU is required (require_gpu) but this onnxruntime build has none of the requested GPU providers "
            f"({', '.join(s for s in requested if s != 'cpu') or 'none requested'}); it has: {', '.join(available)}. "
            "Install onnxruntime-gpu (the 'gpu' extra) on a machine with CUDA, or drop require_gpu"
        )
    if unavailable:
        log.warning(
            "execution providers %s are not in this onnxruntime build (it has %s)",
            ",".join(unavailable),
            ",".join(available),
        )
    if CPU not in chosen:
        chosen.append(CPU)
    return ProviderPlan(chosen, list(requested), unavailable)


def plan_for(settings: Settings) -> ProviderPlan:
    """The plan for the server's settings, with the providers this onnxruntime build has."""
    import onnxruntime as ort

    return plan_providers(settings.providers, ort.get_available_providers(), settings.require_gpu)


def session_providers(
    plan: ProviderPlan,
    execution: Mapping[str, Any] | None = None,
    bundle_folder: Path | None = None,
    trt_cache_dir: Path | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """What to pass to ``InferenceSession(providers=...)`` for one bundle: the plan's providers with the
    bundle's options (``execution``; TensorRT's relative paths resolved against ``bundle_folder``)."""
    execution = execution or {}
    providers: list[tuple[str, dict[str, str]]] = []
    for name in plan.names:
        if name == TENSORRT:
            providers.append((name, tensorrt_options(execution, bundle_folder, trt_cache_dir)))
        elif name == CUDA:
            providers.append((name, cuda_options(execution)))
        else:
            providers.append((name, {}))
    return providers


def verify(running_providers: Sequence[str], plan: ProviderPlan, require_gpu: bool, model: str = "") -> str:
    """The provider that really runs the session (its first), after checking it against the plan.

    Raises when a GPU was required and ONNX Runtime fell back to the CPU; logs a warning on any other fallback.
    """
    if not running_providers:
        raise XstiltsError(f"{model}: onnxruntime reports no execution provider for the session")
    running = running_providers[0]
    if require_gpu and running not in GPU_PROVIDERS:
        raise XstiltsError(
            f"{model}: a GPU is required (require_gpu) but onnxruntime runs the model on {running} "
            f"(asked for {', '.join(plan.names)}): the CUDA/cuDNN/TensorRT libraries or the device are missing; "
            "see the log above for onnxruntime's reason"
        )
    if running != plan.preferred:
        log.warning("%s: asked for %s, but onnxruntime runs %s", model, plan.preferred, running)
    return running
