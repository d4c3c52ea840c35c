"""Sentence retrieval: embeddings of an encoder layer (torch), Tatoeba top-1 and BUCC margin mining (numpy).

``search`` is numpy only; ``embedding`` and ``evaluate`` import torch and transformers.
"""
