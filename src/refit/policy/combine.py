"""The ``combine`` expression: how a policy's enabled rules combine into one verdict.

``"any"``, ``"all"``, or a nested ``{"any"|"all": [rule name or expression, ...]}``
(docs/decisions/0014-declarative-retrain-policy.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from refit.errors import PolicyError

#: Rule names, as ``combine`` expressions use them.
RULES = (
    "drift_share",
    "metric",
    "model_age",
    "new_data",
    "label_drift",
    "prediction_drift",
    "mean_shift",
)
#: Deepest nesting of a ``combine`` expression.
MAX_COMBINE_DEPTH = 4


def check_combine(expr: Any, enabled: list[str]) -> None:
    """Validate a ``combine`` expression against the enabled rules.

    Raises:
        PolicyError: Unknown operator or rule, a rule that is off, an enabled rule left out.
    """
    if isinstance(expr, str):
        if expr not in ("any", "all"):
            raise PolicyError(f"combine must be 'any', 'all' or an expression, got {expr!r}")
        return
    used: set[str] = set()
    _walk(expr, 1, "combine", enabled, used)
    left_out = [r for r in enabled if r not in used]
    if left_out:
        raise PolicyError(
            f"combine: enabled rule(s) {', '.join(left_out)} missing from the expression "
            "(use each enabled rule, or turn it off)"
        )


def _walk(node: Any, depth: int, where: str, enabled: list[str], used: set[str]) -> None:
    """Check one node of an expression (``where`` is its path), adding the rules it uses."""
    if isinstance(node, str):
        _check_rule(node, where, enabled)
        used.add(node)
        return
    if depth > MAX_COMBINE_DEPTH:
        raise PolicyError(f"combine: nested deeper than {MAX_COMBINE_DEPTH} at {where}")
    if not isinstance(node, Mapping) or len(node) != 1:
        raise PolicyError(
            f"combine: {where} must be a rule name or a one-key mapping "
            f"{{'any'|'all': [...]}}, got {node!r}"
        )
    ((op, items),) = node.items()
    if op not in ("any", "all"):
        raise PolicyError(f"combine: operator must be 'any' or 'all' at {where}, got {op!r}")
    if not isinstance(items, list | tuple) or not items:
        raise PolicyError(f"combine: {where}.{op} must be a non-empty list, got {items!r}")
    for i, item in enumerate(items):
        _walk(item, depth + 1, f"{where}.{op}[{i}]", enabled, used)


def _check_rule(name: str, where: str, enabled: list[str]) -> None:
    if name not in RULES:
        raise PolicyError(f"combine: unknown rule {name!r} at {where}; rules: {', '.join(RULES)}")
    if name not in enabled:
        raise PolicyError(f"combine: rule {name!r} at {where} is off (set its threshold to use it)")


def evaluate_combine(expr: Any, fired: Mapping[str, bool]) -> bool:
    """Whether the expression holds, given which enabled rules fired."""
    if isinstance(expr, str):
        if expr in ("any", "all"):
            values = list(fired.values())
            return any(values) if expr == "any" else bool(values) and all(values)
        return fired.get(expr, False)
    ((op, items),) = expr.items()
    values = [evaluate_combine(item, fired) for item in items]
    return any(values) if op == "any" else all(values)


def describe_combine(expr: Any) -> str:
    """The expression in words, e.g. ``any(model_age, all(drift_share, metric))``."""
    if isinstance(expr, str):
        return expr
    ((op, items),) = expr.items()
    return f"{op}(" + ", ".join(describe_combine(i) for i in items) + ")"
