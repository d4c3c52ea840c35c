"""Dataclasses as strict JSON records: written as they are, read back with one clear error for a missing or unknown
key, naming where (the reader behind the typed bench results, :mod:`xstilts.contracts.results`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, TypeVar

from xstilts.errors import XstiltsError

R = TypeVar("R", bound="Record")


class Record:
    """A dataclass written as JSON by :meth:`to_json` and read back strictly by :meth:`from_json`."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()
    WHERE: ClassVar[str] = "record"  # the file named in error messages

    def to_json(self) -> dict[str, Any]:
        return _dump(self)

    @classmethod
    def from_json(cls: type[R], data: Any, where: str | None = None) -> R:
        return load(cls, data, where or cls.WHERE)


def _dump(value: Any) -> Any:
    if isinstance(value, Record) and dataclasses.is_dataclass(value):
        omit = type(value).OMIT_NONE
        return {
            f.name: _dump(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.name in omit and getattr(value, f.name) is None)
        }
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def load(kind: Any, data: Any, where: str) -> Any:
    """``data`` (parsed JSON) as ``kind``: Records and their nesting built, everything else taken as it is."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return load(inner, data, where)
    if origin is list:
        if not isinstance(data, list):
            raise XstiltsError(f"{where}: expected a list, got {type(data).__name__}")
        return [load(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise XstiltsError(f"{where}: expected a mapping, got {type(data).__name__}")
        return {k: load(args[1], v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(kind, type) and issubclass(kind, Record):
        return _record(kind, data, where)
    return data


def _record(kind: type[Record], data: Any, where: str) -> Record:
    if not isinstance(data, dict):
        raise XstiltsError(f"{where}: expected a mapping for {kind.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(kind)
    known = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise XstiltsError(f"{where}: unknown key(s) {', '.join(unknown)} in {kind.__name__}")
    missing = [
        name
        for name, f in known.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise XstiltsError(f"{where}: {kind.__name__} lacks {', '.join(missing)}")
    return kind(**{name: load(hints[name], value, f"{where}.{name}") for name, value in data.items()})
