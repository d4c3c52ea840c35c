"""The research grid: many training runs (models x intermediate recipes x targets x seeds), each exported,
served and benchmarked through the stages' own commands, one result row per cell, and a report per question."""
