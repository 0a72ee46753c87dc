"""Registry transactions as audit records: build, apply and replay them (pure, no storage).

A model's mutable registry state is one object (``refs.json``)::

    {"aliases": {alias: version}, "statuses": {"version": status}, "state": {key: {...}},
     "commit": {"id": "<txn id>", "seq": <seq of its audit record>}}

Every change to it is described by the ``txn`` field of the audit record that commits it::

    {"id": "<new id>", "base": "<id of the commit it was computed from>" | null, "full": bool,
     "aliases": {...}, "statuses": {...}, "state": {...}}

With ``full`` (the first transaction of a store, ``base`` null) the three maps are the whole new
state; otherwise they are the changes (an alias or state key mapped to null is removed).

**The commit rule**, decidable from the log alone: walking the records in order from an empty
state, a ``txn`` record is *committed* when its ``base`` is the id of the last committed one (null
for the first); any other ``txn`` record lost a race to an earlier one and is *aborted* (it never
took effect: `drop_aborted` hides it from readers). Replaying the committed records gives the state
``refs.json`` must hold (`replay`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EMPTY: dict[str, Any] = {"aliases": {}, "statuses": {}, "state": {}}
_MAPS = ("aliases", "statuses", "state")
_SINGULAR = {"aliases": "alias", "statuses": "status of version", "state": "state"}


def live_part(refs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the three maps of a state object (without its ``commit``), deep-copied."""
    return {m: copy.deepcopy(dict(refs.get(m) or {})) for m in _MAPS}


def make_txn(txn_id: str, base: str | None, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict:
    """Return the ``txn`` field that turns ``old`` into ``new`` (full when ``base`` is None)."""
    txn: dict[str, Any] = {"id": txn_id, "base": base, "full": base is None}
    for m in _MAPS:
        before, after = dict(old.get(m) or {}), dict(new.get(m) or {})
        if base is None:
            txn[m] = after
        else:
            changes = {k: v for k, v in after.items() if before.get(k) != v or k not in before}
            changes.update({k: None for k in before if k not in after})
            txn[m] = changes
    return txn


def apply_txn(state: Mapping[str, Any], txn: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``state`` with a transaction applied (a copy)."""
    if txn.get("full"):
        return live_part(txn)
    out = live_part(state)
    for m in _MAPS:
        for k, v in dict(txn.get(m) or {}).items():
            if v is None:
                out[m].pop(k, None)
            else:
                out[m][k] = copy.deepcopy(v)
    return out


@dataclass
class Replay:
    """What the log says the registry state is.

    Attributes:
        state: The maps after every committed transaction.
        commit_id: The last committed transaction's id (None: none yet).
        commit_seq: Its record's seq (0: none).
        committed: seq of each committed transaction record, in order.
        aborted: seq of each aborted one (lost a race; never took effect).
    """

    state: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(EMPTY))
    commit_id: str | None = None
    commit_seq: int = 0
    committed: list[int] = field(default_factory=list)
    aborted: list[int] = field(default_factory=list)

    def feed(self, record: Mapping[str, Any]) -> bool:
        """Apply one record if it commits a transaction; return whether it did."""
        txn = record.get("txn")
        if not isinstance(txn, Mapping):
            return False
        seq = record.get("seq")
        if (
            txn.get("base") != self.commit_id
            or not isinstance(txn.get("id"), str)
            or not isinstance(seq, int)
            or not all(isinstance(txn.get(m) or {}, Mapping) for m in _MAPS)
        ):
            self.aborted.append(seq if isinstance(seq, int) else -1)
            return False
        self.state = apply_txn(self.state, txn)
        self.commit_id, self.commit_seq = txn["id"], seq
        self.committed.append(self.commit_seq)
        return True


def replay(records: Iterable[Mapping[str, Any]]) -> Replay:
    """Replay a log's transaction records from an empty state."""
    out = Replay()
    for record in records:
        out.feed(record)
    return out


def drop_aborted(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the records without the aborted transaction records (they never took effect)."""
    if not any("txn" in r for r in records):
        return records
    rp = Replay()
    return [r for r in records if "txn" not in r or rp.feed(r)]


def diff_states(live: Mapping[str, Any], logged: Mapping[str, Any]) -> list[str]:
    """Return each difference between the live state and the one the log gives, readably."""
    out = []
    for m in _MAPS:
        a, b = dict(live.get(m) or {}), dict(logged.get(m) or {})
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                out.append(f"{_SINGULAR[m]} {k!r}: live {a.get(k)!r}, log says {b.get(k)!r}")
    return out
