"""Token tagging (NER, POS): words and their offsets, sub-word alignment, entity spans and metrics.

``words``, ``alignment`` and ``entities`` use only the standard library, numpy and ``tokenizers`` (the server
imports them); ``metrics`` (seqeval) and ``evaluate`` (torch) are for training and export.
"""
