"""Checks of the values a policy, its state and an observation hold: each names the field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, overload

from refit.errors import PolicyError


def check_keys(cls: type, data: Mapping[str, Any], what: str) -> None:
    """Refuse a non-mapping, or keys that are not fields of the dataclass ``cls``."""
    if not isinstance(data, Mapping):
        raise PolicyError(f"{what} must be a mapping, got {type(data).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise PolicyError(
            f"{what} has unknown field(s) {', '.join(map(str, unknown))}; "
            f"known fields: {', '.join(known)}"
        )


@overload
def number(value: Any, name: str) -> float: ...
@overload
def number(value: Any, name: str, *, optional: bool) -> float | None: ...
def number(value: Any, name: str, *, optional: bool = False) -> float | None:
    """A finite number (not a bool) as float; ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def integer(value: Any, name: str, minimum: int) -> int:
    """An integer (an integral float is taken) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PolicyError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise PolicyError(f"{name} must be >= {minimum}, got {value}")
    return value


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 time; a naive time is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise PolicyError(f"{name} must be an ISO 8601 time, got {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
