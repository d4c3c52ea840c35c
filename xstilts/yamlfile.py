"""Reading the YAML config files (run and grid configs): one mapping, or one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from xstilts.errors import XstiltsError


def load_mapping(path: Path, what: str) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path``; ``what`` names the file in errors ("config")."""
    if not path.is_file():
        raise XstiltsError(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise XstiltsError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise XstiltsError(f"{what} {path} must be a mapping of settings")
    return data
