"""The audit chain's HMAC key and its anchor, taken from the environment.

A hash chain alone is tamper-evident only against accidental edits: whoever can write the store
can edit a record, recompute every hash and the head. Two settings close that gap:

- **The key** (``REFIT_AUDIT_KEY_FILE``, a file such as a mounted Kubernetes Secret, or else
  ``REFIT_AUDIT_KEY``, its UTF-8 text; one trailing newline of a file is ignored, at least
  16 bytes). Each record then carries ``mac``, the HMAC-SHA256 of its ``hash`` under the key. The
  key is never stored in the store, so a writer of the store alone cannot forge a record. It must
  differ from the tokenization key of `refit.privacy` (``REFIT_TOKEN_KEY``): one leaked secret must
  not open both.
- **The anchor** (``REFIT_AUDIT_ANCHOR``, a local folder or ``gs://`` prefix outside the store,
  e.g. a bucket with a retention policy). Each append also writes ``{anchor}/{model}.json``
  (``seq``, ``hash`` and, with a key, ``mac`` of the last record); verify compares the log with
  it, so records cut off the end, or a whole chain rebuilt, show up even without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from refit.errors import IntegrityError, RefitError

AUDIT_KEY_ENV: Final = "REFIT_AUDIT_KEY"
AUDIT_KEY_FILE_ENV: Final = "REFIT_AUDIT_KEY_FILE"
AUDIT_ANCHOR_ENV: Final = "REFIT_AUDIT_ANCHOR"
#: The tokenization key's variable (`refit.privacy.DEFAULT_KEY_ENV`), which must hold another key.
TOKEN_KEY_ENV: Final = "REFIT_TOKEN_KEY"
MIN_KEY_BYTES: Final = 16
_MAX_KEY_BYTES: Final = 4096


def audit_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """Return the audit HMAC key from the environment, or None when none is set.

    Raises:
        IntegrityError: The key file is unreadable, the key is shorter than 16 bytes or longer
            than 4096, or it equals the tokenization key.
    """
    env = os.environ if environ is None else environ
    path = env.get(AUDIT_KEY_FILE_ENV, "")
    if path:
        source = f"{AUDIT_KEY_FILE_ENV}={path}"
        try:
            with open(Path(path), "rb") as fh:
                key = fh.read(_MAX_KEY_BYTES + 2)
        except OSError as exc:
            raise IntegrityError(f"{source}: cannot read the audit key: {exc}") from exc
        key = key[:-1] if key.endswith(b"\n") else key
    elif env.get(AUDIT_KEY_ENV):
        source = AUDIT_KEY_ENV
        key = env[AUDIT_KEY_ENV].encode("utf-8")
    else:
        return None
    if len(key) < MIN_KEY_BYTES or len(key) > _MAX_KEY_BYTES:
        raise IntegrityError(
            f"{source}: the audit key must be {MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes, "
            f"got {len(key)}"
        )
    token = env.get(TOKEN_KEY_ENV, "").encode("utf-8")
    if token and hmac.compare_digest(token, key):
        raise IntegrityError(
            f"{source}: the audit key equals the tokenization key ({TOKEN_KEY_ENV}); use a "
            "separate secret for each"
        )
    return key


def audit_anchor(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the anchor URI (``REFIT_AUDIT_ANCHOR``), or None when unset."""
    env = os.environ if environ is None else environ
    return env.get(AUDIT_ANCHOR_ENV) or None


def record_mac(key: bytes, digest: str) -> str:
    """Return the HMAC-SHA256 (hex) of a record's ``hash`` under ``key``."""
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def mac_ok(key: bytes, digest: str, mac: object) -> bool:
    """Return whether ``mac`` is the HMAC of ``digest`` under ``key`` (constant time)."""
    return isinstance(mac, str) and hmac.compare_digest(record_mac(key, digest), mac)


class Anchor:
    """The head of one audit log, kept outside the store (``{anchor}/{name}.json``).

    Args:
        uri: The anchor: a local folder or ``gs://`` prefix.
        name: The object's stem (the model's name).
    """

    def __init__(self, uri: str, name: str) -> None:
        from refit.io.storage import open_storage

        self._store = open_storage(uri)
        self._name = f"{name}.json"

    def __str__(self) -> str:
        return self._store.uri(self._name)

    def __repr__(self) -> str:
        return f"Anchor({str(self)!r})"

    def read(self) -> dict[str, object] | None:
        """Return the anchored head, or None when nothing was anchored yet.

        Raises:
            IntegrityError: The anchor object is not a valid head.
        """
        import json

        try:
            raw = self._store.read(self._name)
        except (OSError, RefitError) as exc:
            raise IntegrityError(f"audit anchor {self} is unreadable: {exc}") from exc
        if raw is None:
            return None
        try:
            head = json.loads(raw)
            int(head["seq"]), str(head["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"audit anchor {self} is not a valid head: {exc}") from exc
        return head

    def advance(self, record: Mapping[str, object]) -> None:
        """Move the anchored head to ``record`` (never backwards), compare-and-swap.

        Called after the record is written, so a failure here must not read as a failed append:
        it is logged, the anchor stays behind, and the next append moves it on.
        """
        try:
            self._advance(record)
        except (OSError, RefitError) as exc:
            logging.getLogger(__name__).warning(
                "audit anchor %s not advanced to seq %s: %s", self, record.get("seq"), exc
            )

    def _advance(self, record: Mapping[str, object]) -> None:
        import json

        body = {k: record[k] for k in ("seq", "hash", "mac") if k in record}
        data = (json.dumps(body, sort_keys=True) + "\n").encode("utf-8")
        for _ in range(64):
            raw, token = self._store.read_versioned(self._name)
            try:
                # (ignore below) JSON read back as Any and written by this class: seq is an int
                if raw is not None and int(json.loads(raw)["seq"]) >= int(body["seq"]):  # type: ignore[call-overload]
                    return
            except (ValueError, KeyError, TypeError):
                pass
            if self._store.write_if(self._name, data, token):
                return

    def compare(self, last_seq: int, hashes: Mapping[int, str], key: bytes | None) -> list[str]:
        """Compare the anchored head with a log's records; return the problems found.

        Args:
            last_seq: The log's last intact seq.
            hashes: seq -> hash of the log's records.
            key: The audit key, to check the anchored ``mac`` too.
        """
        try:
            head = self.read()
        except IntegrityError as exc:
            return [str(exc)]
        if head is None:
            return [] if not hashes else [f"audit anchor {self} holds no head for this log"]
        # (ignore below) the head is JSON this class wrote: seq is an int
        seq, digest = int(head["seq"]), str(head["hash"])  # type: ignore[call-overload]
        if seq > last_seq:
            return [
                f"audit anchor {self} records seq {seq} but the log ends at seq {last_seq}: "
                "records were removed from the end"
            ]
        if hashes.get(seq) != digest:
            return [
                f"seq {seq}: hash differs from the one anchored at {self}: the chain was rewritten"
            ]
        if key is not None and "mac" in head and not mac_ok(key, digest, head["mac"]):
            return [f"audit anchor {self}: MAC mismatch (anchor forged)"]
        return []
