"""Checks of the fields of a configuration read from JSON or YAML (a policy, a rollout plan).

Each check returns the value in its checked type or raises the caller's error, naming the field
and the value it got. A package binds the checks to its own error once
(``_CHECK = FieldChecks(PolicyError)``), so its messages and error type stay its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, overload

from refit.errors import RefitError

__all__ = ["FieldChecks"]


class FieldChecks:
    """The field checks, raising ``error``.

    Args:
        error: The `RefitError` subclass every check raises.
    """

    def __init__(self, error: type[RefitError]) -> None:
        self.error = error

    @overload
    def number(self, value: Any, name: str) -> float: ...
    @overload
    def number(self, value: Any, name: str, *, optional: bool) -> float | None: ...
    def number(self, value: Any, name: str, *, optional: bool = False) -> float | None:
        """A finite int or float (not a bool) as float; ``None`` passes when ``optional``."""
        if value is None and optional:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.error(f"{name} must be a finite number, got {value!r}")
        return float(value)

    def integer(self, value: Any, name: str, minimum: int) -> int:
        """An int of at least ``minimum`` (a whole float is taken, a bool is not)."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"{name} must be an integer, got {value!r}")
        if value < minimum:
            raise self.error(f"{name} must be >= {minimum}, got {value}")
        return value

    def fraction(self, value: Any, name: str) -> float:
        """A number in [0, 1]."""
        checked = self.number(value, name)
        if not 0 <= checked <= 1:
            raise self.error(f"{name} must be in [0, 1], got {checked}")
        return checked

    def check_keys(self, data: Any, known: Iterable[str], what: str) -> Mapping[str, Any]:
        """Return ``data``: a mapping whose keys are all in ``known``."""
        if not isinstance(data, Mapping):
            raise self.error(f"{what} must be a mapping, got {type(data).__name__}")
        known = list(known)
        unknown = [str(k) for k in data if k not in known]
        if unknown:
            raise self.error(
                f"{what} has unknown field(s) {', '.join(repr(k) for k in unknown)}; "
                f"known fields: {', '.join(known)}"
            )
        return data

    def parse_time(self, value: Any, name: str) -> datetime:
        """An ISO 8601 time; a naive time is taken as UTC."""
        try:
            parsed = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise self.error(f"{name} must be an ISO 8601 time, got {value!r}") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
