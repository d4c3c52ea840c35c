"""Extractive question answering: windows over long contexts, span post-processing and the official metrics.

``windows``, ``postprocess`` and ``metrics`` need only ``tokenizers`` and numpy (the server imports them);
``evaluate`` is the PyTorch evaluator training uses.
"""
