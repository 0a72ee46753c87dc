"""Field validators shared by the rollout plan types (deploy/plan.py and deploy/stages.py).

Each returns the value in its checked type or raises `DeployError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from refit.errors import DeployError

__all__ = ["check_keys", "fraction", "integer", "number", "optional_number"]


def number(value: Any, name: str) -> float:
    """Return ``value`` as a float; it must be a finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DeployError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def optional_number(value: Any, name: str) -> float | None:
    """As `number`, with None passed through."""
    return None if value is None else number(value, name)


def integer(value: Any, name: str, minimum: int) -> int:
    """Return ``value`` as an int >= ``minimum`` (a whole float is accepted, a bool is not)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DeployError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise DeployError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_keys(data: Any, known: tuple[str, ...], what: str) -> Mapping[str, Any]:
    """Return ``data``: a mapping whose keys are all in ``known``."""
    if not isinstance(data, Mapping):
        raise DeployError(f"{what} must be a mapping, got {type(data).__name__}")
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise DeployError(
            f"{what} has unknown field(s) {', '.join(repr(k) for k in unknown)}; "
            f"known fields: {', '.join(known)}"
        )
    return data


def fraction(value: Any, name: str) -> float:
    """Return ``value`` as a float in [0, 1]."""
    value = number(value, name)
    if not 0 <= value <= 1:
        raise DeployError(f"{name} must be in [0, 1], got {value}")
    return value
