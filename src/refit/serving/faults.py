"""Fault injection for canary drills: make one version fail or slow down on purpose.

Off by default. A drill configures faults per version (``--fault "2:error_rate=0.5"``,
``--fault "2:latency_ms=300"``) so that the rollout checks can be seen to stop and roll back a
bad canary. A faulted version sleeps ``latency_ms`` before it answers, then answers 500 with
probability ``error_rate`` (from the server's seeded generator) instead of predicting. Never
configure faults on a server that takes real traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from refit.errors import DeployError

__all__ = ["FAULT_KEYS", "Fault", "check_faults", "parse_fault", "parse_faults"]

#: The settings a fault has.
FAULT_KEYS: tuple[str, ...] = ("error_rate", "latency_ms")


@dataclass(frozen=True)
class Fault:
    """The faults injected into one version.

    Attributes:
        error_rate: Probability (0-1) that a request answers 500 instead of a prediction.
        latency_ms: Milliseconds every request waits before it is answered (>= 0).
    """

    error_rate: float = 0.0
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        rate, latency = self.error_rate, self.latency_ms
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise DeployError(f"fault error_rate must be a number from 0 to 1, got {rate!r}")
        if (
            isinstance(latency, bool)
            or not isinstance(latency, (int, float))
            or not math.isfinite(latency)
            or latency < 0
        ):
            raise DeployError(f"fault latency_ms must be a finite number >= 0, got {latency!r}")

    def to_dict(self) -> dict[str, float]:
        """Return a JSON-ready dict."""
        return {"error_rate": float(self.error_rate), "latency_ms": float(self.latency_ms)}


def _version(text: Any, where: str) -> int:
    try:
        version = int(str(text).strip())
    except ValueError:
        version = 0
    if version < 1 or isinstance(text, bool):
        raise DeployError(f"{where}: version must be a positive integer, got {text!r}")
    return version


def parse_fault(text: str) -> tuple[int, str, float]:
    """Parse one ``VERSION:KEY=VALUE`` fault option, e.g. ``"2:error_rate=0.5"``.

    Returns:
        ``(version, key, value)``.

    Raises:
        DeployError: The text does not have that form, the key is not one of `FAULT_KEYS`, or
            the value is not a number.
    """
    where = f"fault {text!r}"
    head, sep, setting = str(text).partition(":")
    key, eq, raw = setting.partition("=")
    key = key.strip()
    if not sep or not eq:
        raise DeployError(
            f"{where} must look like VERSION:KEY=VALUE, e.g. '2:error_rate=0.5' or "
            "'2:latency_ms=300'"
        )
    version = _version(head, where)
    if key not in FAULT_KEYS:
        raise DeployError(f"{where}: unknown setting {key!r}; use one of {list(FAULT_KEYS)}")
    try:
        value = float(raw)
    except ValueError:
        raise DeployError(f"{where}: {key} must be a number, got {raw.strip()!r}") from None
    try:
        Fault(**{key: value})  # range check
    except DeployError as exc:
        raise DeployError(f"{where}: {exc}") from None
    return version, key, value


def parse_faults(texts: Iterable[str]) -> dict[int, Fault]:
    """Parse repeated ``--fault`` options; settings of one version merge (the last one wins).

    Raises:
        DeployError: An option is malformed (see `parse_fault`).
    """
    faults: dict[int, Fault] = {}
    for text in texts:
        version, key, value = parse_fault(text)
        faults[version] = replace(faults.get(version, Fault()), **{key: value})
    return faults


def check_faults(faults: Mapping[Any, Fault | Mapping[str, Any]] | None) -> dict[int, Fault]:
    """Normalise the ``faults`` option of `refit.serving.create_app`.

    Args:
        faults: version -> `Fault` or ``{"error_rate": float, "latency_ms": float}``; None for
            no faults.

    Returns:
        version -> `Fault`.

    Raises:
        DeployError: A version is not a positive integer, a setting is unknown, or a value is
            out of range.
    """
    out: dict[int, Fault] = {}
    for key, value in (faults or {}).items():
        version = _version(key, f"faults[{key!r}]")
        if isinstance(value, Fault):
            out[version] = value
            continue
        if not isinstance(value, Mapping):
            raise DeployError(
                f"faults[{key!r}] must be a Fault or a mapping of {list(FAULT_KEYS)}, got {value!r}"
            )
        unknown = sorted(set(value) - set(FAULT_KEYS))
        if unknown:
            raise DeployError(
                f"faults[{key!r}]: unknown setting(s) {unknown}; use {list(FAULT_KEYS)}"
            )
        out[version] = Fault(**dict(value))
    return out
