"""The declarative privacy configuration: which columns to drop, tokenize or generalise.

A configuration is plain JSON, so it can travel as a pipeline parameter. It names columns and,
for tokenization, *where* the key is (an environment variable or a mounted Secret file), never
the key itself::

    {
      "drop": ["email", "phone"],
      "tokenize": ["customer_id"],
      "generalize": {
        "age": {"bucket": 10},
        "income": {"bins": [0, 20000, 50000, 100000]},
        "birth_date": {"truncate": "year"}
      },
      "key_env": "REFIT_TOKEN_KEY"
    }

Keys are strict: an unknown field, a column named by two actions or a malformed rule is a
:class:`~refit.errors.PrivacyError` naming the field or column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from refit.errors import PrivacyError

__all__ = [
    "DEFAULT_KEY_ENV",
    "GENERALIZE_KINDS",
    "TRUNCATE_UNITS",
    "GeneralizeRule",
    "PrivacyConfig",
]

#: Environment variable read for the tokenization key when the config names none.
DEFAULT_KEY_ENV = "REFIT_TOKEN_KEY"

#: The generalisation rules: numeric buckets of a fixed width, numeric bins with explicit
#: edges, date truncation.
GENERALIZE_KINDS = ("bucket", "bins", "truncate")

#: Units a date or timestamp can be truncated to.
TRUNCATE_UNITS = ("day", "month", "year")

_FIELDS = ("drop", "tokenize", "generalize", "key_env", "key_file")
#: Fields someone might use to put the secret itself in the config: refused with a pointer to
#: ``key_env``/``key_file`` (and their value is never echoed).
_SECRET_FIELDS = ("key", "token_key", "secret", "hmac_key", "salt")


@dataclass(frozen=True)
class GeneralizeRule:
    """One generalisation rule.

    Attributes:
        kind: ``"bucket"`` (``value`` is the positive bucket width), ``"bins"`` (``value`` is
            the strictly increasing tuple of bin edges) or ``"truncate"`` (``value`` is
            ``"day"``, ``"month"`` or ``"year"``).
        value: The rule's parameter, as above.
    """

    kind: str
    value: float | tuple[float, ...] | str

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as in the JSON config (``{"bucket": 10}``)."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {self.kind: value}

    @classmethod
    def from_dict(cls, column: str, data: Any) -> GeneralizeRule:
        """Parse ``{"bucket": width}``, ``{"bins": [edges]}`` or ``{"truncate": unit}``.

        Args:
            column: The column the rule is for (named in errors).
            data: The rule as in the JSON config.

        Returns:
            The rule.

        Raises:
            PrivacyError: The rule is not exactly one known kind with a valid parameter.
        """
        where = f"privacy config: generalize rule for column {column!r}"
        if not isinstance(data, Mapping) or len(data) != 1:
            raise PrivacyError(
                f"{where} must be an object with exactly one of {list(GENERALIZE_KINDS)}, "
                f'e.g. {{"bucket": 10}}'
            )
        ((kind, value),) = data.items()
        if kind == "bucket":
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise PrivacyError(f"{where}: bucket width must be a positive number")
            return cls("bucket", float(value) if isinstance(value, float) else int(value))
        if kind == "bins":
            if not isinstance(value, list | tuple) or not value:
                raise PrivacyError(f"{where}: bins must be a non-empty list of edges")
            if not all(_is_number(v) and math.isfinite(v) for v in value):
                raise PrivacyError(f"{where}: every bin edge must be a finite number")
            if any(b <= a for a, b in zip(value, value[1:], strict=False)):
                raise PrivacyError(f"{where}: bin edges must be strictly increasing")
            return cls("bins", tuple(value))
        if kind == "truncate":
            if value not in TRUNCATE_UNITS:
                raise PrivacyError(f"{where}: truncate must be one of {list(TRUNCATE_UNITS)}")
            return cls("truncate", str(value))
        raise PrivacyError(f"{where}: unknown rule {kind!r}; use one of {list(GENERALIZE_KINDS)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _columns(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list | tuple):
        raise PrivacyError(f"privacy config: {name!r} must be a list of column names")
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        raise PrivacyError(f"privacy config: {name!r} holds non-column entries {bad!r}")
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    if repeated:
        raise PrivacyError(f"privacy config: {name!r} names column(s) {repeated} twice")
    return tuple(value)


@dataclass(frozen=True)
class PrivacyConfig:
    """Which columns to drop, tokenize or generalise, and where the tokenization key is.

    Attributes:
        drop: Columns removed from the data.
        tokenize: Columns replaced by keyed HMAC-SHA256 tokens (hex; the same value always gives
            the same token under the same key, so joins still work; nulls stay null).
        generalize: Columns coarsened by a :class:`GeneralizeRule`.
        key_env: Environment variable holding the tokenization key (its UTF-8 bytes).
        key_file: Path of a file holding the key (a mounted Kubernetes Secret); when set it is
            used instead of ``key_env``. One trailing newline is ignored.
    """

    drop: tuple[str, ...] = ()
    tokenize: tuple[str, ...] = ()
    generalize: Mapping[str, GeneralizeRule] = field(default_factory=dict)
    key_env: str = DEFAULT_KEY_ENV
    key_file: str = ""

    @property
    def columns(self) -> list[str]:
        """Every column the config names, in config order (drop, tokenize, generalize)."""
        return [*self.drop, *self.tokenize, *self.generalize]

    @property
    def handled(self) -> list[str]:
        """Sorted columns the config handles (dropped, tokenized or generalised)."""
        return sorted(self.columns)

    @property
    def key_source(self) -> str:
        """Where the key is read from, for messages and the audit log (never the key)."""
        if self.key_file:
            return f"file {self.key_file}"
        return f"environment variable {self.key_env}"

    def to_dict(self) -> dict[str, Any]:
        """Return the config as JSON-ready data (the input of :meth:`from_dict`)."""
        out: dict[str, Any] = {
            "drop": list(self.drop),
            "tokenize": list(self.tokenize),
            "generalize": {k: r.to_dict() for k, r in self.generalize.items()},
        }
        if self.key_file:
            out["key_file"] = self.key_file
        else:
            out["key_env"] = self.key_env
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyConfig:
        """Build a config from JSON-like data.

        Args:
            data: Mapping with the optional fields ``drop``, ``tokenize``, ``generalize``,
                ``key_env`` and ``key_file``.

        Returns:
            The config.

        Raises:
            PrivacyError: A field is unknown or malformed, the config holds a secret, a column
                is named by two actions, or both ``key_env`` and ``key_file`` are set.
        """
        if not isinstance(data, Mapping):
            raise PrivacyError("privacy config must be a JSON object")
        secrets = sorted(k for k in data if str(k).lower() in _SECRET_FIELDS)
        if secrets:
            raise PrivacyError(
                f"privacy config must not hold the key itself (field(s) {secrets}): put it in "
                f"an environment variable named by 'key_env' (default {DEFAULT_KEY_ENV}) or a "
                "mounted Secret file named by 'key_file'"
            )
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if unknown:
            raise PrivacyError(
                f"privacy config: unknown field(s) {unknown}; allowed: {list(_FIELDS)}"
            )
        drop = _columns(data, "drop")
        tokenize = _columns(data, "tokenize")
        raw_rules = data.get("generalize", {})
        if not isinstance(raw_rules, Mapping):
            raise PrivacyError(
                "privacy config: 'generalize' must map column names to rules, "
                'e.g. {"age": {"bucket": 10}}'
            )
        generalize = {str(c): GeneralizeRule.from_dict(str(c), r) for c, r in raw_rules.items()}
        _check_no_clash({"drop": drop, "tokenize": tokenize, "generalize": tuple(generalize)})
        key_env, key_file = _key_source(data)
        return cls(
            drop=drop,
            tokenize=tokenize,
            generalize=generalize,
            key_env=key_env,
            key_file=key_file,
        )

    @classmethod
    def from_json(cls, text: str) -> PrivacyConfig:
        """Parse a config from JSON text (an empty string is the empty config).

        Raises:
            PrivacyError: The text is not JSON or the config is invalid (see :meth:`from_dict`).
        """
        if not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except ValueError as exc:
            # The decoder's message gives a position, never the text itself.
            raise PrivacyError(f"privacy config is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _check_no_clash(actions: Mapping[str, Sequence[str]]) -> None:
    """Refuse a column named by two actions (``actions``: action -> its columns)."""
    named: dict[str, list[str]] = {}
    for action, cols in actions.items():
        for col in cols:
            named.setdefault(col, []).append(action)
    clashes = {c: a for c, a in named.items() if len(a) > 1}
    if clashes:
        detail = ", ".join(f"{c!r} ({' and '.join(a)})" for c, a in sorted(clashes.items()))
        raise PrivacyError(f"privacy config: column(s) named by two actions: {detail}")


def _key_source(data: Mapping[str, Any]) -> tuple[str, str]:
    """The checked ``(key_env, key_file)`` of a config: one of them, never both."""
    if "key_env" in data and "key_file" in data and data.get("key_file"):
        raise PrivacyError("privacy config: set one of 'key_env' and 'key_file', not both")
    key_env = data.get("key_env", DEFAULT_KEY_ENV)
    if not isinstance(key_env, str) or not key_env.strip() or "=" in key_env:
        raise PrivacyError("privacy config: 'key_env' must be the name of an environment variable")
    key_file = data.get("key_file", "") or ""
    if not isinstance(key_file, str):
        raise PrivacyError("privacy config: 'key_file' must be a file path")
    return key_env, key_file
