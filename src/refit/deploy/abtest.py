"""A/B test on a business metric: sticky arms, feedback per arm, tests, sample size, a decision.

The A/B stage of a rollout holds a split between the champion (``control``) and the challenger
(``treatment``) for a planned number of *units* (one unit = one V2 infer request, named by its
``id``), joins feedback events (``{"id": ..., "value": ...}``: a conversion 0/1, revenue...) to
the arm that served the request, and decides by a declared rule.

- Arms are sticky and need no log: `assign_arm` hashes the request ``id`` with the experiment's
  salt (SHA-256), so the model server and the analysis compute the same arm from the id alone.
- Tests: `welch_t_test` (difference of means, unequal variances) and `two_proportion_z_test`
  (difference of rates; pooled standard error for the test, unpooled for the interval), both
  two-sided; `msprt` is the always-valid alternative (a normal-mixture sequential probability
  ratio test, Johari et al. 2017) for those who look early and often.
- `plan_sample_size` turns a minimum detectable effect, alpha and power into units per arm.
- `decide` applies the rule: a significant positive effect promotes, a significant negative one
  rolls back, anything else ends as the plan's ``on_inconclusive`` (``keep`` the champion without
  marking the challenger, or ``rollback``). With the fixed-horizon method no decision is taken
  before both arms reach the planned units, so looking early changes nothing; with the
  sequential method a look at any time keeps the false-positive rate at or below alpha.

References:
    B. L. Welch (1947), "The generalization of 'Student's' problem when several different
    population variances are involved", Biometrika 34.
    R. Johari, L. Pekelis, D. Walsh (2017), "Peeking at A/B tests: why it matters, and what to
    do about it", KDD '17 (the mixture SPRT and always-valid intervals).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from scipy import stats as sps

from refit.errors import DeployError

__all__ = [
    "CONTROL",
    "TREATMENT",
    "ABLook",
    "ArmStats",
    "SampleSizePlan",
    "TestResult",
    "aggregate_feedback",
    "assign_arm",
    "decide",
    "feedback_analyzer",
    "msprt",
    "plan_sample_size",
    "read_feedback",
    "two_proportion_z_test",
    "welch_t_test",
]

CONTROL: Final = "control"
TREATMENT: Final = "treatment"
Arm = Literal["control", "treatment"]
Decision = Literal["promote", "keep", "rollback", "continue"]

#: Longest unit id accepted (a V2 request id is a short string).
MAX_ID_CHARS = 256


def assign_arm(unit_id: str, salt: str, treatment_percent: float) -> Arm:
    """The arm of one unit: a deterministic hash of its id, salted per experiment.

    Args:
        unit_id: The V2 request ``id`` (the unit).
        salt: The experiment's salt (a new experiment reshuffles the units).
        treatment_percent: The treatment's share of the units, in (0, 100).

    Returns:
        ``"treatment"`` when ``sha256(salt, id)`` as a uniform number in [0, 1) falls below the
        share, else ``"control"``.
    """
    digest = hashlib.sha256(f"{salt}\x00{unit_id}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2.0**64
    return TREATMENT if draw < treatment_percent / 100.0 else CONTROL


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm's feedback values.

    Attributes:
        n: Units with feedback.
        total: Sum of the values.
        total_sq: Sum of the squared values.
    """

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @property
    def mean(self) -> float:
        """Mean value (0.0 with no units)."""
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance (0.0 with fewer than two units)."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.total**2 / self.n) / (self.n - 1))

    def add(self, value: float) -> ArmStats:
        """These statistics with one more value."""
        return ArmStats(self.n + 1, self.total + value, self.total_sq + value * value)

    def to_dict(self) -> dict[str, float]:
        """Return a JSON-ready dict (n, mean, variance)."""
        return {"n": self.n, "mean": self.mean, "variance": self.variance}


@dataclass(frozen=True)
class TestResult:
    """A two-sided test of treatment minus control.

    Attributes:
        test: ``"welch_t"``, ``"two_proportion_z"`` or ``"msprt"``.
        effect: Treatment mean minus control mean.
        ci_low: Lower end of the interval on the effect (always-valid for ``msprt``).
        ci_high: Upper end.
        p_value: Two-sided p-value (always-valid for ``msprt``).
        significant: ``p_value <= alpha``.
        alpha: The level.
        statistic: The t or z statistic, or the mixture likelihood ratio for ``msprt``.
        relative_effect: Effect over the control mean (None when that mean is 0).
    """

    __test__ = False  # not a pytest class

    test: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    alpha: float
    statistic: float
    relative_effect: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _alpha(alpha: float, name: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise DeployError(f"{name} must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _relative(effect: float, base: float) -> float | None:
    return effect / base if base != 0 else None


def _need(control: ArmStats, treatment: ArmStats, minimum: int, test: str) -> None:
    if control.n < minimum or treatment.n < minimum:
        raise DeployError(
            f"{test} needs at least {minimum} units per arm, got control {control.n} and "
            f"treatment {treatment.n}"
        )


def welch_t_test(control: ArmStats, treatment: ArmStats, alpha: float = 0.05) -> TestResult:
    """Welch's two-sided t-test of the difference of means, with its (1 - alpha) interval.

    Raises:
        DeployError: Fewer than two units in an arm, or alpha outside (0, 1).
    """
    alpha = _alpha(alpha)
    _need(control, treatment, 2, "Welch's t-test")
    effect = treatment.mean - control.mean
    vc, vt = control.variance / control.n, treatment.variance / treatment.n
    se = math.sqrt(vc + vt)
    if se == 0:
        p = 1.0 if effect == 0 else 0.0
        t = math.copysign(math.inf, effect) if effect else 0.0
        rel = _relative(effect, control.mean)
        return TestResult("welch_t", effect, effect, effect, p, p <= alpha, alpha, t, rel)
    df = (vc + vt) ** 2 / (
        (vc**2 / (control.n - 1) if vc else 0.0) + (vt**2 / (treatment.n - 1) if vt else 0.0)
    )
    t = effect / se
    p = float(2 * sps.t.sf(abs(t), df))
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    return TestResult(
        "welch_t", effect, effect - half, effect + half, p, p <= alpha, alpha, t,
        _relative(effect, control.mean),
    )  # fmt: skip


def two_proportion_z_test(
    control: ArmStats, treatment: ArmStats, alpha: float = 0.05
) -> TestResult:
    """Two-sided z-test of two rates (values 0/1): pooled SE for the test, Wald interval.

    Raises:
        DeployError: An arm without units, values that are not 0/1, or a bad alpha.
    """
    alpha = _alpha(alpha)
    _need(control, treatment, 1, "the two-proportion z-test")
    for arm, s in ((CONTROL, control), (TREATMENT, treatment)):
        if not math.isclose(s.total, s.total_sq) or not 0 <= s.total <= s.n:
            raise DeployError(
                f"the two-proportion z-test needs 0/1 values; arm {arm} has other values"
            )
    pc, pt = control.mean, treatment.mean
    effect = pt - pc
    pooled = (control.total + treatment.total) / (control.n + treatment.n)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n))
    z = effect / se0 if se0 > 0 else 0.0
    p = float(2 * sps.norm.sf(abs(z))) if se0 > 0 else 1.0
    se = math.sqrt(pc * (1 - pc) / control.n + pt * (1 - pt) / treatment.n)
    half = float(sps.norm.ppf(1 - alpha / 2)) * se
    return TestResult(
        "two_proportion_z", effect, effect - half, effect + half, p, p <= alpha, alpha, z,
        _relative(effect, pc),
    )  # fmt: skip


def msprt(
    control: ArmStats,
    treatment: ArmStats,
    *,
    tau: float,
    alpha: float = 0.05,
    proportion: bool = False,
) -> TestResult:
    """The normal-mixture SPRT of "no difference": an always-valid p-value and interval.

    With ``theta`` the difference of means and ``V`` its variance (plug-in: the arms' sample
    variances over their units), the mixture likelihood ratio of ``theta ~ N(0, tau^2)`` against
    ``theta = 0`` is ``sqrt(V / (V + tau^2)) exp(theta^2 tau^2 / (2 V (V + tau^2)))``. Under the
    null it is a nonnegative martingale of mean 1, so it ever reaching ``1 / alpha`` has
    probability at most alpha however often it is looked at (Ville); the p-value is
    ``min(1, 1 / ratio)`` and the interval is every ``theta0`` the test would not reject.

    Args:
        control: Control arm.
        treatment: Treatment arm.
        tau: Mixture scale, in the metric's units: set it near the effect worth finding.
        alpha: The level.
        proportion: Values are 0/1: use the Bernoulli variance of each arm's rate.

    Raises:
        DeployError: Fewer than two units in an arm, tau <= 0, or a bad alpha.
    """
    alpha = _alpha(alpha)
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not tau > 0:
        raise DeployError(f"msprt: tau must be a number > 0, got {tau!r}")
    _need(control, treatment, 2, "the sequential test")
    effect = treatment.mean - control.mean
    if proportion:
        vc = control.mean * (1 - control.mean)
        vt = treatment.mean * (1 - treatment.mean)
    else:
        vc, vt = control.variance, treatment.variance
    v = vc / control.n + vt / treatment.n
    tau2 = float(tau) ** 2
    if v <= 0:  # no spread at all: an exact answer
        ratio = math.inf if effect else 1.0
        return TestResult(
            "msprt", effect, effect, effect, 1.0 / ratio if ratio else 1.0,
            1.0 / ratio <= alpha, alpha, ratio, _relative(effect, control.mean),
        )  # fmt: skip
    log_ratio = 0.5 * math.log(v / (v + tau2)) + effect**2 * tau2 / (2 * v * (v + tau2))
    p = min(1.0, math.exp(-log_ratio))
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    return TestResult(
        "msprt", effect, effect - half, effect + half, p, p <= alpha, alpha,
        math.exp(min(log_ratio, 700.0)), _relative(effect, control.mean),
    )  # fmt: skip


@dataclass(frozen=True)
class SampleSizePlan:
    """Units needed to find a minimum detectable effect with a two-sided test.

    Attributes:
        control: Units in the control arm.
        treatment: Units in the treatment arm.
        total: ``control + treatment``.
        mde: The minimum detectable effect (absolute, in the metric's units).
        alpha: Two-sided level.
        power: Chance of finding an effect of size ``mde``.
        treatment_percent: The treatment's share of the units.
    """

    control: int
    treatment: int
    total: int
    mde: float
    alpha: float
    power: float
    treatment_percent: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def plan_sample_size(
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_percent: float = 50.0,
    sd: float | None = None,
    baseline_rate: float | None = None,
) -> SampleSizePlan:
    """Units per arm for a two-sided test to find ``mde`` with the given power.

    Give ``sd`` (the metric's standard deviation) for a mean, or ``baseline_rate`` (the control's
    rate) for a proportion, whose treatment rate is then ``baseline_rate + mde``. With ``k`` the
    treatment's share, the total is ``(z_{1-alpha/2} + z_{power})^2 (v_c / (1 - k) + v_t / k) /
    mde^2`` where ``v`` is each arm's per-unit variance.

    Raises:
        DeployError: Both or neither of ``sd`` and ``baseline_rate``, or a value out of range
            (the message names it).
    """
    alpha = _alpha(alpha)
    power = _alpha(power, "power")
    if isinstance(mde, bool) or not isinstance(mde, int | float) or not mde > 0:
        raise DeployError(f"mde (minimum detectable effect) must be > 0, got {mde!r}")
    if not 0 < treatment_percent < 100:
        raise DeployError(f"treatment_percent must be in (0, 100), got {treatment_percent!r}")
    if (sd is None) == (baseline_rate is None):
        raise DeployError("give exactly one of sd (for a mean) and baseline_rate (for a rate)")
    if sd is not None:
        if not sd > 0:
            raise DeployError(f"sd must be > 0, got {sd!r}")
        vc = vt = float(sd) ** 2
    else:
        # (ignore below) one of sd and baseline_rate is given (checked above): here the rate
        p1 = float(baseline_rate)  # type: ignore[arg-type]
        p2 = p1 + mde
        if not 0 < p1 < 1 or not 0 < p2 < 1:
            raise DeployError(
                f"baseline_rate ({p1}) and baseline_rate + mde ({p2}) must both be in (0, 1)"
            )
        vc, vt = p1 * (1 - p1), p2 * (1 - p2)
    k = treatment_percent / 100.0
    z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    total = z**2 * (vc / (1 - k) + vt / k) / mde**2
    n_c, n_t = math.ceil(total * (1 - k)), math.ceil(total * k)
    return SampleSizePlan(n_c, n_t, n_c + n_t, float(mde), alpha, power, float(treatment_percent))


def decide(
    control: ArmStats,
    treatment: ArmStats,
    *,
    metric: str,
    method: str,
    plan: SampleSizePlan,
    on_inconclusive: str,
    tau: float,
    min_units: int = 100,
    final: bool = False,
) -> tuple[Decision, TestResult | None, str]:
    """Apply the declared rule at one look.

    Args:
        control: Control arm so far.
        treatment: Treatment arm so far.
        metric: ``"mean"`` (Welch) or ``"proportion"`` (z-test).
        method: ``"fixed"`` (decide once both arms reach the plan) or ``"sequential"`` (mSPRT at
            every look; the plan's units end it as inconclusive).
        plan: The sample-size plan.
        on_inconclusive: ``"keep"`` or ``"rollback"``.
        tau: The mSPRT's mixture scale.
        min_units: No sequential decision before each arm has this many units.
        final: The last look (a deadline): decide now with what there is.

    Returns:
        ``(decision, test, reason)``; ``test`` is None while too few units were seen to test.
    """
    proportion = metric == "proportion"
    reached = control.n >= plan.control and treatment.n >= plan.treatment
    counts = f"control {control.n}/{plan.control}, treatment {treatment.n}/{plan.treatment} units"
    test: TestResult | None = None
    if method == "sequential":
        if control.n < min_units or treatment.n < min_units:
            if not final:
                return (
                    "continue",
                    None,
                    f"sequential test waits for {min_units} units/arm ({counts})",
                )
        else:
            test = msprt(control, treatment, tau=tau, alpha=plan.alpha, proportion=proportion)
    elif reached or final:
        if control.n >= 2 and treatment.n >= 2:
            fn = two_proportion_z_test if proportion else welch_t_test
            test = fn(control, treatment, plan.alpha)
    else:
        return "continue", None, f"fixed horizon not reached ({counts})"
    if test is not None and test.significant:
        what = (
            f"{test.test}: effect {test.effect:+.4g} "
            f"[{test.ci_low:+.4g}, {test.ci_high:+.4g}], p={test.p_value:.3g} <= {plan.alpha:g} "
            f"({counts})"
        )
        if test.effect > 0:
            return "promote", test, f"treatment better: {what}"
        return "rollback", test, f"treatment worse: {what}"
    if not (reached or final):
        return "continue", test, f"no significant difference yet ({counts})"
    where = "at the planned units" if reached else "at the deadline, before the planned units"
    detail = (
        "too few units to test"
        if test is None
        else f"{test.test}: effect {test.effect:+.4g} [{test.ci_low:+.4g}, {test.ci_high:+.4g}], "
        f"p={test.p_value:.3g} > {plan.alpha:g}"
    )
    # (ignore below) on_inconclusive is one of the decisions (checked where the plan is read)
    return on_inconclusive, test, f"inconclusive {where} ({detail}; {counts}): {on_inconclusive}"  # type: ignore[return-value]


def aggregate_feedback(
    events: Iterable[Mapping[str, Any]], salt: str, treatment_percent: float
) -> tuple[ArmStats, ArmStats, int]:
    """Sum feedback values per arm, one value per unit (the last event of an id wins).

    Returns:
        ``(control, treatment, ignored)``: ``ignored`` counts events without a usable id or a
        finite numeric value.
    """
    last: dict[str, float] = {}
    ignored = 0
    for event in events:
        uid, value = event.get("id"), event.get("value")
        if (
            not isinstance(uid, str)
            or not 0 < len(uid) <= MAX_ID_CHARS
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            ignored += 1
            continue
        last[uid] = float(value)
    arms = {CONTROL: ArmStats(), TREATMENT: ArmStats()}
    for uid, value in last.items():
        arm = assign_arm(uid, salt, treatment_percent)
        arms[arm] = arms[arm].add(value)
    return arms[CONTROL], arms[TREATMENT], ignored


def read_feedback(path: str | Path, max_events: int = 10_000_000) -> list[dict[str, Any]]:
    """Read feedback events from a JSON Lines file (a missing file has none).

    A torn last line (a writer killed mid-line) and lines that are not JSON objects are skipped.

    Raises:
        DeployError: More than ``max_events`` lines.
    """
    path = Path(path)
    events: list[dict[str, Any]] = []
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return events
    with handle:
        for i, line in enumerate(handle):
            if i >= max_events:
                raise DeployError(f"feedback file {path} has more than {max_events} events")
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


@dataclass(frozen=True)
class ABLook:
    """One look at the A/B test.

    Attributes:
        decision: ``"promote"``, ``"keep"``, ``"rollback"`` or ``"continue"``.
        reason: The decision in words.
        control: Control arm's statistics.
        treatment: Treatment arm's statistics.
        planned: The sample-size plan.
        test: The test run (None while too few units were seen).
        ignored: Feedback events without a usable id or value.
    """

    decision: Decision
    reason: str
    control: ArmStats
    treatment: ArmStats
    planned: SampleSizePlan
    test: TestResult | None
    ignored: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the ``ab_test`` audit record's payload)."""
        return {
            "decision": self.decision,
            "reason": self.reason,
            "arms": {CONTROL: self.control.to_dict(), TREATMENT: self.treatment.to_dict()},
            "planned": self.planned.to_dict(),
            "test": None if self.test is None else self.test.to_dict(),
            "ignored_events": self.ignored,
        }

    def check_dict(self) -> dict[str, Any]:
        """The look as a check result dict (the rollout's step timeline)."""
        test = self.test
        return {
            "name": "ab-test",
            "kind": "ab_test",
            "passed": self.decision in ("continue", "promote"),
            "value": None if test is None else test.effect,
            "primary_value": self.control.mean if self.control.n else None,
            "threshold": None,
            "detail": self.reason,
            "decisive": self.decision == "rollback",
            "no_data": test is None,
            "extra": self.to_dict(),
        }


def feedback_analyzer(spec: Any) -> Callable[[str, bool, float], ABLook]:
    """Build the A/B look of a plan's `refit.deploy.plan.ABTestSpec` on its feedback file.

    Returns:
        ``look(salt, final, since) -> ABLook``: reads the events written since ``since`` (wall
        time the split started; older feedback is of units routed before the split), joins them
        to arms by id and applies `decide`.
    """
    planned = spec.sample_size()
    tau = spec.tau if spec.tau is not None else spec.mde

    def look(salt: str, final: bool, since: float = 0.0) -> ABLook:
        events = [
            e
            for e in read_feedback(spec.feedback_path)
            if not isinstance(e.get("ts"), int | float) or e["ts"] >= since
        ]
        control, treatment, ignored = aggregate_feedback(events, salt, spec.percent)
        decision, test, reason = decide(
            control,
            treatment,
            metric=spec.metric,
            method=spec.method,
            plan=planned,
            on_inconclusive=spec.on_inconclusive,
            tau=tau,
            min_units=spec.min_units,
            final=final,
        )
        return ABLook(decision, reason, control, treatment, planned, test, ignored)

    return look
