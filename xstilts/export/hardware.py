"""What this machine can build and run: a CUDA GPU for ONNX Runtime, and the CPU's integer instructions."""

from __future__ import annotations

import platform
from pathlib import Path

from xstilts.contracts.providers import CUDA

CPU_INFO = Path("/proc/cpuinfo")


def missing_gpu() -> str | None:
    """Why ONNX Runtime cannot use a CUDA GPU here, or None when it can."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu on a machine with a GPU)"
    import torch

    if not torch.cuda.is_available():
        return "onnxruntime-gpu is installed but no CUDA device is visible"
    return None


def cpu_int8_target() -> str:
    """The optimum quantization preset that fits this CPU: avx512_vnni, avx512, avx2 or arm64."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    flags: set[str] = set()
    if CPU_INFO.is_file():
        for line in CPU_INFO.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"
