"""The trigger service's state in SQLite: dedupe keys, cooldowns, policy state, runs.

One connection guarded by a lock (the service is one process); WAL journal, so a restart finds
everything that was answered before it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cooldown (model TEXT PRIMARY KEY, launched_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS policy_state (model TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    hook TEXT NOT NULL,
    trigger TEXT NOT NULL,
    reasons TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    launcher TEXT NOT NULL,
    external_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule (model TEXT PRIMARY KEY, last_fire REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""

#: How long a statement waits for another connection's write lock (a second service process,
#: or a `sqlite3` shell) before "database is locked".
BUSY_TIMEOUT_SECONDS = 30.0

#: Run statuses that count as in flight.
IN_FLIGHT = ("pending", "running")


class StateStore:
    """SQLite-backed state of the trigger service."""

    def __init__(self, path: str | Path) -> None:
        """Open (and create) the database at ``path`` (``":memory:"`` for tests)."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
        )
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def claim(self, key: str, now: float, ttl: float) -> bool:
        """Record ``key``; ``False`` when it was seen within ``ttl`` seconds (a duplicate)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO dedupe(key, seen_at) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET seen_at = excluded.seen_at "
                "WHERE dedupe.seen_at < ?",
                (key, now, now - ttl),
            )
            return cur.rowcount == 1

    def last_launch(self, model: str) -> float | None:
        """When a run was last launched for ``model`` (epoch seconds)."""
        with self._lock:
            row = self._db.execute(
                "SELECT launched_at FROM cooldown WHERE model = ?", (model,)
            ).fetchone()
        return None if row is None else float(row[0])

    def policy_state(self, model: str) -> dict[str, Any] | None:
        """The persisted policy state of ``model``."""
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM policy_state WHERE model = ?", (model,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def save_policy_state(self, model: str, state: dict[str, Any]) -> None:
        """Persist the policy state of ``model``."""
        with self._lock:
            self._db.execute(
                "INSERT INTO policy_state(model, state) VALUES (?, ?) "
                "ON CONFLICT(model) DO UPDATE SET state = excluded.state",
                (model, json.dumps(state)),
            )

    def in_flight(self) -> int:
        """Runs pending or running."""
        with self._lock:
            row = self._db.execute(
                f"SELECT COUNT(*) FROM runs WHERE status IN {IN_FLIGHT!r}"
            ).fetchone()
        return int(row[0])

    def add_run(
        self,
        *,
        model: str,
        hook: str,
        trigger: str,
        reasons: list[str],
        params: dict[str, Any],
        launcher: str,
        now: float,
        max_in_flight: int | None = None,
    ) -> int | None:
        """Record a run about to be launched (status ``pending``) and start the cooldown.

        With ``max_in_flight``, the count of runs in flight and the insert are one transaction:
        ``None`` (nothing recorded) when that many are already in flight, so concurrent
        decisions for different models never pass the limit together.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if max_in_flight is not None:
                    (count,) = self._db.execute(
                        f"SELECT COUNT(*) FROM runs WHERE status IN {IN_FLIGHT!r}"
                    ).fetchone()
                    if count >= max_in_flight:
                        self._db.execute("ROLLBACK")
                        return None
                cur = self._db.execute(
                    "INSERT INTO runs(model, hook, trigger, reasons, params, status, launcher, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                    (
                        model, hook, trigger, json.dumps(reasons), json.dumps(params), launcher,
                        now, now,
                    ),
                )  # fmt: skip
                self._db.execute(
                    "INSERT INTO cooldown(model, launched_at) VALUES (?, ?) "
                    "ON CONFLICT(model) DO UPDATE SET launched_at = excluded.launched_at",
                    (model, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return int(cur.lastrowid or 0)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set ``status``, ``external_id``, ``attempts`` or ``error`` of a run."""
        allowed = {"status", "external_id", "attempts", "error"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update run field(s) {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(
                f"UPDATE runs SET {sets}, updated_at = ? WHERE id = ?",
                (*fields.values(), time.time(), run_id),
            )

    def runs(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Runs, newest first (of one ``status`` if given)."""
        query = "SELECT * FROM runs"
        args: tuple[Any, ...] = ()
        if status:
            query += " WHERE status = ?"
            args = (status,)
        query += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            cur = self._db.execute(query, (*args, limit))
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            r["reasons"] = json.loads(r["reasons"])
            r["params"] = json.loads(r["params"])
        return rows

    def last_fire(self, model: str) -> float | None:
        """When the embedded scheduler last fired for ``model``."""
        with self._lock:
            row = self._db.execute(
                "SELECT last_fire FROM schedule WHERE model = ?", (model,)
            ).fetchone()
        return None if row is None else float(row[0])

    def set_last_fire(self, model: str, when: float) -> None:
        """Record a scheduler fire."""
        with self._lock:
            self._db.execute(
                "INSERT INTO schedule(model, last_fire) VALUES (?, ?) "
                "ON CONFLICT(model) DO UPDATE SET last_fire = excluded.last_fire",
                (model, when),
            )
