"""A sequential test of the canary's error rate against the primary's.

The test watches the cumulative counts since the rollout started and may be looked at after
every analysis without inflating its false-alarm rate: Wald's sequential probability ratio test
on the conditional binomial of the errors (which side each error came from, given the traffic
shares), with Ville's bound ``log(1 / alpha)`` for "worse", Wald's lower boundary for
"not worse", and no decision before each side has served ``min_requests``. The model, the
statistic, the boundaries and the references are docs/decisions/0017-sequential-error-rate-test.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from refit.errors import DeployError

Decision = Literal["worse", "not_worse", "continue"]


@dataclass(frozen=True)
class SequentialResult:
    """The sequential test's answer at one look.

    Attributes:
        decision: ``"worse"`` (the canary fails more often than the primary: roll back),
            ``"not_worse"`` (the data favour "no worse than ``1 + min_effect`` times"), or
            ``"continue"`` (not enough evidence either way, or the guard holds).
        llr: The log likelihood ratio of H1 (canary ``1 + min_effect`` times the primary's
            error rate) against H0 (equal rates); 0.0 while the guard holds.
        upper: The "worse" boundary, ``log(1 / alpha)``.
        lower: The "not worse" boundary, ``log(beta / (1 - alpha))``.
        canary_share: The canary's share of all requests, or None with no requests at all.
        canary_requests: Canary requests since the rollout started.
        canary_errors: Canary errors since the rollout started.
        primary_requests: Primary requests since the rollout started.
        primary_errors: Primary errors since the rollout started.
        reason: The decision in words.
    """

    decision: Decision
    llr: float
    upper: float
    lower: float
    canary_share: float | None
    canary_requests: int
    canary_errors: int
    primary_requests: int
    primary_errors: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)
        else:
            raise DeployError(f"{name} must be a whole number of requests, got {value!r}")
    value = int(value)
    if value < 0:
        raise DeployError(f"{name} must be >= 0, got {value}")
    return value


def _counts(*counts: Any) -> tuple[int, int, int, int]:
    """Return (canary requests, canary errors, primary requests, primary errors) as ints.

    Raises:
        DeployError: A count that is not a whole number >= 0, or more errors than requests.
    """
    names = ("canary_requests", "canary_errors", "primary_requests", "primary_errors")
    n_c, e_c, n_p, e_p = (_count(value, name) for value, name in zip(counts, names, strict=True))
    if e_c > n_c:
        raise DeployError(f"canary_errors ({e_c}) exceed canary_requests ({n_c})")
    if e_p > n_p:
        raise DeployError(f"primary_errors ({e_p}) exceed primary_requests ({n_p})")
    return n_c, e_c, n_p, e_p


def _check_parameters(alpha: float, beta: float, min_effect: float, min_requests: Any) -> int:
    """Check the test's parameters; return ``min_requests`` as an int."""
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not 0 < value < 1:
            raise DeployError(f"{name} must be in (0, 1), got {value!r}")
    if alpha + beta >= 1:
        raise DeployError(f"alpha + beta must be < 1, got {alpha} + {beta}")
    if not min_effect > 0 or not math.isfinite(min_effect):
        raise DeployError(f"min_effect must be a finite number > 0, got {min_effect!r}")
    min_requests = _count(min_requests, "min_requests")
    if min_requests < 1:
        raise DeployError(f"min_requests must be >= 1, got {min_requests}")
    return min_requests


def error_rate_sprt(
    canary_requests: int,
    canary_errors: int,
    primary_requests: int,
    primary_errors: int,
    *,
    alpha: float = 0.05,
    beta: float = 0.2,
    min_effect: float = 1.0,
    min_requests: int = 100,
) -> SequentialResult:
    """Test whether the canary fails more often than the primary (docs/decisions/0017).

    Args:
        canary_requests: Canary requests since the rollout started.
        canary_errors: Canary errors (e.g. HTTP 5xx) since the rollout started.
        primary_requests: Primary requests over the same time.
        primary_errors: Primary errors over the same time.
        alpha: Bound on the chance of ever calling an equally good canary worse, in (0, 1).
        beta: Wald's target chance of calling a canary ``1 + min_effect`` times worse "not
            worse", in (0, 1); ``alpha + beta < 1``.
        min_effect: The relative increase of the error rate the test is tuned to (> 0):
            1.0 means "twice the primary's".
        min_requests: Requests each side must have served before any decision (>= 1).

    Returns:
        The decision, the statistic and its boundaries.

    Raises:
        DeployError: A count that is negative or not whole, more errors than requests, or a
            parameter out of range.
    """
    n_c, e_c, n_p, e_p = _counts(canary_requests, canary_errors, primary_requests, primary_errors)
    min_requests = _check_parameters(alpha, beta, min_effect, min_requests)

    upper = math.log(1.0 / alpha)
    lower = math.log(beta / (1.0 - alpha))
    total = n_c + n_p
    share = n_c / total if total else None

    def result(decision: Decision, llr: float, reason: str) -> SequentialResult:
        return SequentialResult(
            decision=decision,
            llr=llr,
            upper=upper,
            lower=lower,
            canary_share=share,
            canary_requests=n_c,
            canary_errors=e_c,
            primary_requests=n_p,
            primary_errors=e_p,
            reason=reason,
        )

    if n_p == 0:
        return result("continue", 0.0, "no primary requests: nothing to compare the canary with")
    if n_c < min_requests or n_p < min_requests:
        return result(
            "continue",
            0.0,
            f"too few requests to decide (canary {n_c}, primary {n_p}; each side needs "
            f"{min_requests})",
        )
    rho1 = 1.0 + min_effect
    m = e_c + e_p
    llr = e_c * math.log(rho1) - m * math.log1p(n_c / total * (rho1 - 1.0))  # total > 0 here
    rates = f"canary {e_c}/{n_c} = {e_c / n_c:.4f} vs primary {e_p}/{n_p} = {e_p / n_p:.4f} errors"
    if llr >= upper:
        return result(
            "worse",
            llr,
            f"canary fails more often than the primary ({rates}; log LR {llr:.2f} >= "
            f"{upper:.2f}, alpha {alpha:g})",
        )
    if llr <= lower:
        return result(
            "not_worse",
            llr,
            f"canary not worse than {rho1:g}x the primary's error rate ({rates}; log LR "
            f"{llr:.2f} <= {lower:.2f})",
        )
    return result(
        "continue",
        llr,
        f"no decision yet ({rates}; log LR {llr:.2f} within ({lower:.2f}, {upper:.2f}))",
    )
