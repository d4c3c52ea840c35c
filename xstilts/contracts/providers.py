"""Execution providers: the short names settings and bundles use, and ONNX Runtime's names for them."""

from __future__ import annotations

from xstilts.contracts.names import Name


class Provider(Name):
    """A provider's short name (``--providers tensorrt,cuda,cpu``)."""

    TENSORRT = "tensorrt"
    CUDA = "cuda"
    CPU = "cpu"

    @property
    def ort_name(self) -> str:
        """ONNX Runtime's name for this provider."""
        return ORT_NAMES[self]


ORT_NAMES: dict[Provider, str] = {
    Provider.TENSORRT: "TensorrtExecutionProvider",
    Provider.CUDA: "CUDAExecutionProvider",
    Provider.CPU: "CPUExecutionProvider",
}
CPU = ORT_NAMES[Provider.CPU]
CUDA = ORT_NAMES[Provider.CUDA]
TENSORRT = ORT_NAMES[Provider.TENSORRT]
GPU_PROVIDERS = frozenset({TENSORRT, CUDA})


def uses_gpu(provider: str) -> bool:
    """Whether ONNX Runtime's ``provider`` runs on a GPU."""
    return provider in GPU_PROVIDERS
