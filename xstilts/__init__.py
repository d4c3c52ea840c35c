"""xstilts: intermediate-task training for zero-shot cross-lingual transfer, exported, served and measured."""

__version__ = "0.1.0"
