"""Export: a target checkpoint into deployable ONNX bundles (fp32, int8, fp16, O1-O4, TensorRT) or
embedding bundles (fp32, int8), gated on parity."""

from xstilts.export.embedding import export_embedding
from xstilts.export.measure import measure_bundles
from xstilts.export.pipeline import export_checkpoint
from xstilts.export.variants import VARIANTS, Variant

__all__ = ["VARIANTS", "Variant", "export_checkpoint", "export_embedding", "measure_bundles"]
