"""Traffic split between the champion and a canary, read from the registry.

The rollout state lives in the registry, where the rollout controller writes it:

- the ``champion`` alias is the primary;
- the registry state under `CANARY_STATE_KEY` (``registry.read_state("canary")``) names the
  canary and its share: ``{"version": 4, "percent": 10}``. No state, ``{}`` or
  ``{"version": null}`` means no canary.

Two optional keys of the same state drive the delivery stages:

- ``"shadow": V``: a copy of every unpinned request goes to version V off the response path
  (`refit.serving.shadow`); its answer is compared, never returned;
- ``"experiment": {"salt": S}``: an A/B test. The canary's share is then assigned by unit, not
  by draw: a request goes to the canary when the salted hash of its V2 ``id`` says so
  (`refit.deploy.abtest.assign_arm`), so the same id always meets the same version and a
  feedback event finds its arm from its id alone.

An unpinned request goes to the canary with probability ``percent / 100``. With a canary but no
champion (a first rollout, where there is nothing to split with) the canary takes every request.
A canary state that cannot be honoured (not a dict, a bad percent, an unregistered version) is
ignored, with the reason in `RolloutState.problem` and the log: the primary keeps all the
traffic, and the canary's metrics stay empty, which a rollout check reads as "no data".
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from refit.errors import DeployError, RefitError
from refit.registry import ModelRegistry

__all__ = [
    "CANARY_STATE_KEY",
    "CHAMPION_ALIAS",
    "RolloutState",
    "TrafficRouter",
    "choose_version",
    "choose_version_for_unit",
    "parse_canary_state",
    "parse_stage_state",
    "read_rollout_state",
    "revision",
]

logger = logging.getLogger("refit.serving")

#: Registry state key the rollout controller writes the canary under.
CANARY_STATE_KEY = "canary"
#: Registry alias of the primary.
CHAMPION_ALIAS = "champion"


def revision(version: int) -> str:
    """The metrics label of a version: ``v{version}``."""
    return f"v{version}"


@dataclass(frozen=True)
class RolloutState:
    """Who serves unpinned requests.

    Attributes:
        primary: The champion version, or None when there is none.
        canary: The canary version, or None.
        canary_percent: Percent of unpinned requests the canary receives (0-100).
        problem: Why a canary state in the registry was ignored ("" when none was).
        shadow: The version that answers copies of the requests (None: no shadow).
        salt: The A/B experiment's salt ("": no experiment, the split is drawn per request).
    """

    primary: int | None
    canary: int | None = None
    canary_percent: float = 0.0
    problem: str = ""
    shadow: int | None = None
    salt: str = ""

    def split(self) -> dict[int, float]:
        """Each serving version's share of unpinned traffic, in percent."""
        if self.canary is None or self.canary == self.primary:
            return {} if self.primary is None else {self.primary: 100.0}
        if self.primary is None:
            return {self.canary: 100.0}
        return {self.primary: 100.0 - self.canary_percent, self.canary: self.canary_percent}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "primary": self.primary,
            "canary": self.canary,
            "canary_percent": self.canary_percent,
            "split": {revision(v): p for v, p in self.split().items()},
            "problem": self.problem,
            "shadow": self.shadow,
            "experiment": {"salt": self.salt} if self.salt else None,
        }


def parse_canary_state(data: Any) -> tuple[int | None, float]:
    """Check the canary state written by the rollout controller.

    Args:
        data: ``registry.read_state("canary")``: None, ``{}``, ``{"version": null}`` (no canary)
            or ``{"version": 4, "percent": 10}``. Other keys are ignored.

    Returns:
        ``(version, percent)``; ``(None, 0.0)`` when there is no canary.

    Raises:
        DeployError: The state is not a dict, the version is not a positive integer, or percent
            is missing or outside 0-100.
    """
    if data is None:
        return None, 0.0
    if not isinstance(data, Mapping):
        raise DeployError(f"canary state must be a JSON object, got {data!r}")
    version = data.get("version")
    if version is None:
        return None, 0.0
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DeployError(f"canary state 'version' must be a positive integer, got {version!r}")
    percent = data.get("percent")
    if (
        isinstance(percent, bool)
        or not isinstance(percent, (int, float))
        or not 0 <= percent <= 100
    ):
        raise DeployError(
            f"canary state 'percent' must be a number from 0 to 100, got {percent!r} "
            f"(canary version {version})"
        )
    return version, float(percent)


def read_rollout_state(registry: ModelRegistry) -> RolloutState:
    """Read the champion alias and the canary state of a model.

    Returns:
        The state; a canary state that cannot be honoured is dropped, with the reason in
        ``problem``.

    Raises:
        RegistryError: The registry's alias or state file cannot be read.
    """
    primary = registry.get_alias(CHAMPION_ALIAS)
    raw = registry.read_state(CANARY_STATE_KEY)
    try:
        canary, percent = parse_canary_state(raw)
        if canary is not None and not registry.exists(canary):
            raise DeployError(
                f"canary state names version {canary}, which model "
                f"{registry.model_name!r} does not have"
            )
        shadow, salt = parse_stage_state(raw)
        if shadow is not None and not registry.exists(shadow):
            raise DeployError(
                f"shadow state names version {shadow}, which model "
                f"{registry.model_name!r} does not have"
            )
    except DeployError as exc:
        return RolloutState(primary=primary, problem=str(exc))
    return RolloutState(
        primary=primary, canary=canary, canary_percent=percent, shadow=shadow, salt=salt
    )


def parse_stage_state(data: Any) -> tuple[int | None, str]:
    """Check the shadow and A/B keys of the canary state.

    Returns:
        ``(shadow version or None, experiment salt or "")``.

    Raises:
        DeployError: ``shadow`` is not a positive integer, or ``experiment`` is not an object
            with a non-empty ``salt`` string of at most 200 characters.
    """
    if not isinstance(data, Mapping):
        return None, ""
    shadow = data.get("shadow")
    if shadow is not None and (
        isinstance(shadow, bool) or not isinstance(shadow, int) or shadow < 1
    ):
        raise DeployError(f"canary state 'shadow' must be a positive integer, got {shadow!r}")
    experiment = data.get("experiment")
    if experiment is None:
        return shadow, ""
    salt = experiment.get("salt") if isinstance(experiment, Mapping) else None
    if not isinstance(salt, str) or not 0 < len(salt) <= 200:
        raise DeployError(
            f"canary state 'experiment' must be {{'salt': a string of 1-200 characters}}, "
            f"got {experiment!r}"
        )
    return shadow, salt


def choose_version_for_unit(state: RolloutState, unit_id: str) -> int | None:
    """Pick the version for one unit of an A/B experiment: sticky by its salted id hash."""
    from refit.deploy.abtest import TREATMENT, assign_arm

    if state.canary is None or state.primary is None or not state.salt:
        return state.canary if state.primary is None else state.primary
    arm = assign_arm(unit_id, state.salt, state.canary_percent)
    return state.canary if arm == TREATMENT else state.primary


def choose_version(state: RolloutState, draw: float) -> int | None:
    """Pick the version that serves one unpinned request.

    Args:
        state: The current rollout state.
        draw: A uniform number in [0, 1); the canary serves when ``draw < percent / 100``.

    Returns:
        The version, or None when there is neither a champion nor a canary.
    """
    if state.canary is None:
        return state.primary
    if state.primary is None:
        return state.canary
    return state.canary if draw < state.canary_percent / 100.0 else state.primary


class TrafficRouter:
    """Routes unpinned requests by the registry's rollout state, re-read at most every so often.

    Thread-safe. One uniform draw is taken from the seeded generator for every routed request,
    so a given seed and sequence of requests always gives the same routing.

    Args:
        registry: The model's registry.
        seed: Seed of the routing generator (`random.Random`).
        refresh_seconds: Re-read the state when the last read is older than this (0: every
            request).
        clock: Monotonic clock in seconds (tests pass their own).
        on_change: Called with the new state whenever a read gives a different state.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        seed: int = 0,
        refresh_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[RolloutState], None] | None = None,
    ) -> None:
        if refresh_seconds < 0:
            raise DeployError(f"state_refresh_seconds must be >= 0, got {refresh_seconds!r}")
        self.registry = registry
        self.refresh_seconds = float(refresh_seconds)
        self._rng = random.Random(seed)
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: RolloutState | None = None
        self._read_at = 0.0
        self._logged_problem = ""

    def state(self) -> RolloutState:
        """The current rollout state (re-read from the registry when stale).

        A failed re-read keeps the last state and logs why; with no state read yet, a failed
        read counts as "nothing to serve".
        """
        with self._lock:
            return self._refresh()

    def _refresh(self) -> RolloutState:
        now = self._clock()
        if self._state is not None and now - self._read_at < self.refresh_seconds:
            return self._state
        try:
            state = read_rollout_state(self.registry)
        except (RefitError, OSError, ValueError) as exc:  # a store that cannot be read
            logger.warning("cannot read the rollout state, keeping the last one: %s", exc)
            state = self._state or RolloutState(primary=None, problem=str(exc))
        self._read_at = now
        if state.problem and state.problem != self._logged_problem:
            logger.warning("ignoring the canary state: %s", state.problem)
        self._logged_problem = state.problem
        if state != self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
        return state

    def route(self) -> tuple[int | None, RolloutState]:
        """Pick the version for one unpinned request.

        Returns:
            ``(version, state)``: the version (None when nothing can serve) and the state it
            was chosen by.
        """
        with self._lock:
            state = self._refresh()
            draw = self._rng.random()
        return choose_version(state, draw), state
