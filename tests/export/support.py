"""Constants shared by the export tests and their fixtures."""

GATE_EXAMPLES = 24
CPU_VARIANTS = ("fp32", "int8", "fp16", "O1", "O2", "O3", "trt-fp16", "trt-int8")
