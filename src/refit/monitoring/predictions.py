"""The prediction log: every answered prediction with its id, so labels can be joined later.

The model server (``refit serve-model --prediction-log DIR``) writes it; anyone can write the same
format from their own serving stack and hand it to ``refit labels join``.

Format (JSON Lines, UTF-8, one prediction per line, in files ``*.jsonl`` of one folder)::

    {"id": "req-42", "time": "2026-12-01T10:00:00.123Z", "model": "credit-default",
     "version": 3, "prediction": 1, "proba": {"0": 0.2, "1": 0.8},
     "features": {"age": 41, "income": 52000.0}}

- ``id`` (required): a non-empty string of at most 256 characters, the key labels are joined on.
  The server writes the V2 response's ``id`` (the request's ``id``, or the uuid4 it generated);
  a request of several rows gives its rows ``ID#0``, ``ID#1``, ...
- ``time`` (required): ISO 8601 with a time zone (``Z`` or ``+01:00``): when it was answered.
- ``prediction`` (required): the predicted class (a string, integer or boolean) or value (a
  number).
- ``proba`` (optional): class -> probability, for classifiers; what the label-free estimate
  (CBPE) reads. Probabilities are finite, in [0, 1], and sum to 1 (within 1e-6 per class).
- ``model`` (optional string), ``version`` (optional positive integer), ``features`` (optional
  object of column -> value).

The server's files are ``predictions-NNNNNNNN.jsonl`` segments: a segment is closed at
``max_segment_bytes`` and a new one begun; past ``max_segments`` the oldest is deleted (the log
is bounded). Every line is written whole in one ``write`` call; a process killed mid-write leaves
at worst a torn last line, which the reader skips (and reports) and the writer never appends to
(it begins a new segment when the last one does not end in a newline). Any other bad line is an
error that names the file, the line and what is wrong.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from refit.errors import DataError

__all__ = [
    "MAX_ID_CHARS",
    "MAX_LINE_BYTES",
    "PredictionLog",
    "PredictionLogError",
    "PredictionRecords",
    "check_record",
    "read_predictions",
]

log = logging.getLogger("refit.monitoring")

#: Longest ``id``.
MAX_ID_CHARS = 256
#: Longest line the reader accepts (a row of features included).
MAX_LINE_BYTES = 1 << 20
#: Most bad lines named in one error.
MAX_NAMED = 10
#: Segment file names written by `PredictionLog`.
SEGMENT_RE = re.compile(r"^predictions-(\d{8})\.jsonl$")
_FIELDS = frozenset({"id", "time", "model", "version", "prediction", "proba", "features"})


class PredictionLogError(DataError):
    """A prediction log (or a labels file) holds lines that are not the documented format."""


def _utc(text: Any, where: str) -> datetime:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{where} must be an ISO 8601 time string, got {text!r:.60}")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where} {text!r:.60} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"{where} {text!r:.60} has no time zone (add Z or +HH:MM)")
    return when.astimezone(UTC)


def _label_value(value: Any, where: str) -> Any:
    """A class or value as written: string, integer, boolean or finite number."""
    if isinstance(value, bool | int | str):
        if isinstance(value, str) and not value:
            raise ValueError(f"{where} must not be empty")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value!r}")
        return value
    raise ValueError(f"{where} must be a string, integer, boolean or number, got {value!r:.60}")


def check_record(record: Any) -> dict[str, Any]:
    """Check one prediction record against the format (see the module docstring).

    Returns:
        The record with ``time`` parsed to a UTC `datetime`.

    Raises:
        ValueError: Naming the field and what is wrong with it.
    """
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - _FIELDS)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
        )
    rid = record.get("id")
    if not isinstance(rid, str) or not rid or len(rid) > MAX_ID_CHARS:
        raise ValueError(
            f"id must be a non-empty string of at most {MAX_ID_CHARS} characters, got {rid!r:.60}"
        )
    if "prediction" not in record:
        raise ValueError("prediction is missing")
    out = dict(record)
    out["time"] = _utc(record.get("time"), "time")
    out["prediction"] = _label_value(record["prediction"], "prediction")
    _check_model_version(record.get("model"), record.get("version"))
    proba = record.get("proba")
    if proba is not None:
        _check_proba(proba)
    features = record.get("features")
    if features is not None and not isinstance(features, dict):
        raise ValueError(
            f"features must be an object of column -> value, got {type(features).__name__}"
        )
    return out


def _check_model_version(model: Any, version: Any) -> None:
    """``model`` a non-empty string and ``version`` a positive integer, where given."""
    if model is not None and (not isinstance(model, str) or not model):
        raise ValueError(f"model must be a non-empty string, got {model!r:.60}")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(f"version must be a positive integer, got {version!r:.60}")


def _check_proba(proba: Any) -> None:
    """``proba``: a non-empty object of class -> probability in [0, 1], summing to 1."""
    if not isinstance(proba, dict) or not proba:
        raise ValueError(
            f"proba must be a non-empty object of class -> probability, got {proba!r:.60}"
        )
    for cls, p in proba.items():
        if (
            isinstance(p, bool)
            or not isinstance(p, int | float)
            or not math.isfinite(p)
            or not 0 <= p <= 1
        ):
            raise ValueError(f"proba[{cls!r:.40}] must be a probability in [0, 1], got {p!r:.40}")
    total = math.fsum(proba.values())
    if abs(total - 1.0) > 1e-6 * len(proba):
        raise ValueError(f"proba must sum to 1, sums to {total:.6g}")


@dataclass
class PredictionRecords:
    """Predictions read from a log.

    Attributes:
        frame: One row per prediction: ``id``, ``time`` (UTC), ``model``, ``version``,
            ``prediction``, ``proba`` (dict or None), in file then line order.
        torn: ``FILE:LINE`` of each torn last line skipped (a writer killed mid-write).
        files: The files read.
    """

    frame: pd.DataFrame
    torn: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _log_files(path: Path, kind: str) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".jsonl" and p.is_file())
        if not files:
            raise PredictionLogError(f"{kind} folder {path} holds no *.jsonl file")
        return files
    if not path.exists():
        raise PredictionLogError(f"{kind} {path} does not exist")
    return [path]


def iter_json_lines(
    path: str | Path, check: Any, kind: str, torn: list[str] | None = None
) -> Iterable[dict[str, Any]]:
    """Checked records of the JSON Lines files at ``path`` (a file or a folder of ``*.jsonl``).

    A last line with no newline that does not parse is a torn write: skipped and appended to
    ``torn``. Every other bad line is collected; at the end a `PredictionLogError` names up to
    ten of them (``FILE:LINE: what is wrong``) and how many there were.

    Raises:
        PredictionLogError: Bad lines, a missing path, or a folder with no ``*.jsonl`` file.
    """
    bad = _BadLines()
    for file in _log_files(Path(path), kind):
        for number, (raw, is_tail) in enumerate(_lines(file), start=1):
            where = f"{file}:{number}"
            record = _parse_line(raw, is_tail, where, bad, torn)
            if record is _SKIP:
                continue
            try:
                yield check(record)
            except ValueError as exc:
                bad.add(f"{where}: {exc}"[:300])
    if bad.count:
        more = f" (and {bad.count - len(bad.named)} more)" if bad.count > len(bad.named) else ""
        raise PredictionLogError(
            f"{bad.count} bad line(s) in {kind} {path}{more}:\n  " + "\n  ".join(bad.named)
        )


class _BadLines:
    """The bad lines of a log: every one counted, the first :data:`MAX_NAMED` named."""

    def __init__(self) -> None:
        self.count = 0
        self.named: list[str] = []

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.named) < MAX_NAMED:
            self.named.append(message)


#: What :func:`_parse_line` returns for a line that holds no record.
_SKIP = object()


def _parse_line(
    raw: bytes, is_tail: bool, where: str, bad: _BadLines, torn: list[str] | None
) -> Any:
    """The line's JSON value, or :data:`_SKIP` for a blank, over-long, torn or non-JSON line.

    A blank last line is nothing; a last line that does not parse is torn (added to ``torn``);
    the other skipped lines are added to ``bad``.
    """
    if not raw.strip():
        if not is_tail:
            bad.add(f"{where}: empty line")
        return _SKIP
    if len(raw) > MAX_LINE_BYTES:
        bad.add(f"{where}: line is over {MAX_LINE_BYTES} bytes")
        return _SKIP
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        if not is_tail:
            bad.add(f"{where}: not JSON ({exc})"[:300])
        elif torn is not None:
            torn.append(where)
        return _SKIP


def _lines(file: Path) -> Iterable[tuple[bytes, bool]]:
    """Each line of a file without its newline, and whether it is a last line with no newline.

    Read one line at a time; a line longer than `MAX_LINE_BYTES` is cut there (and refused).
    """
    with file.open("rb") as f:
        while raw := f.readline(MAX_LINE_BYTES + 1):
            if raw.endswith(b"\n"):
                yield raw[:-1], False
            elif len(raw) > MAX_LINE_BYTES:
                while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the over-long line
                yield raw, False
            else:
                yield raw, True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; write a finite number or null")


def read_predictions(path: str | Path) -> PredictionRecords:
    """Read and check a prediction log: a ``*.jsonl`` file, or a folder of them.

    Raises:
        PredictionLogError: Naming each bad line (file, line number, what is wrong).
    """
    torn: list[str] = []
    rows = list(iter_json_lines(path, check_record, "prediction log", torn))
    frame = pd.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "time": pd.to_datetime([r["time"] for r in rows], utc=True),
            "model": [r.get("model") for r in rows],
            "version": [r.get("version") for r in rows],
            "prediction": pd.Series([r["prediction"] for r in rows], dtype=object),
            "proba": pd.Series([r.get("proba") for r in rows], dtype=object),
        }
    )
    files = [str(p) for p in _log_files(Path(path), "prediction log")]
    return PredictionRecords(frame=frame, torn=torn, files=files)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PredictionLog:
    """Append-only, size-rotated, bounded JSON Lines log of predictions (thread-safe).

    Args:
        folder: Where the segments go (created).
        max_segment_bytes: A segment is closed once it reaches this size.
        max_segments: Segments kept; the oldest is deleted past it.
        log_features: Also write each row's features.

    Raises:
        DataError: A bound is not positive, or ``folder`` is a file.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        max_segment_bytes: int = 64 << 20,
        max_segments: int = 100,
        log_features: bool = False,
    ) -> None:
        if max_segment_bytes < 1024 or max_segments < 1:
            raise DataError(
                f"prediction log bounds: max_segment_bytes must be >= 1024 and max_segments >= 1, "
                f"got {max_segment_bytes} and {max_segments}"
            )
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise DataError(f"prediction log {self.folder} is a file; give a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_segment_bytes = max_segment_bytes
        self.max_segments = max_segments
        self.log_features = log_features
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._seq = 0
        segments = self.segments()
        if segments:
            last = segments[-1]
            # (ignore below) segments() lists only names SEGMENT_RE matches
            self._seq = int(SEGMENT_RE.match(last.name).group(1))  # type: ignore[union-attr]
            size = last.stat().st_size
            if size and not _ends_with_newline(last):
                log.warning("prediction log %s ends in a torn line: beginning a new segment", last)
                self._seq += 1
            else:
                self._size = size

    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        return sorted(p for p in self.folder.iterdir() if SEGMENT_RE.match(p.name))

    def _open(self) -> int:
        if self._fd is None:
            if self._seq == 0:
                self._seq = 1
            path = self.folder / f"predictions-{self._seq:08d}.jsonl"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._seq += 1
        self._size = 0
        segments = self.segments()
        for old in segments[: max(0, len(segments) + 1 - self.max_segments)]:
            log.warning("prediction log over %d segments: deleting %s", self.max_segments, old)
            old.unlink(missing_ok=True)

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append records (already in the format) as one write.

        Raises:
            OSError: The folder cannot be written.
        """
        if not records:
            return
        data = "".join(
            json.dumps(r, separators=(",", ":"), allow_nan=False, default=str) + "\n"
            for r in records
        ).encode("utf-8")
        with self._lock:
            if self._size and self._size + len(data) > self.max_segment_bytes:
                self._rotate()
            fd = self._open()
            os.write(fd, data)
            self._size += len(data)
            if self._size >= self.max_segment_bytes:
                self._rotate()

    def log_response(
        self,
        response: Mapping[str, Any],
        *,
        classes: Sequence[Any] | None = None,
        features: Mapping[str, Sequence[Any]] | None = None,
        time: str | None = None,
    ) -> int:
        """Log the rows of a V2 infer response; how many were logged.

        Args:
            response: The response the server sends (``id``, ``model_name``,
                ``model_version``, ``outputs`` with ``predict`` and maybe ``predict_proba``).
            classes: The classifier's classes, in ``predict_proba``'s column order.
            features: Column -> values of the request rows (written with ``log_features``).
            time: When it was answered (ISO 8601); now by default.
        """
        outputs = {o["name"]: o for o in response.get("outputs", [])}
        predict = outputs.get("predict")
        if predict is None:  # the client asked for predict_proba only: nothing to join on
            return 0
        labels = list(predict["data"])
        n = len(labels)
        if n == 0:
            return 0
        proba_rows: list[list[float]] | None = None
        class_keys: list[str] = []
        proba = outputs.get("predict_proba")
        if proba is not None and classes is not None and n:
            flat = list(proba["data"])
            k = len(classes)
            class_keys = [str(c) for c in classes]
            proba_rows = [flat[i * k : (i + 1) * k] for i in range(n)]
        rid = str(response["id"])
        stamp = time or _now_iso()
        version = int(response["model_version"])
        records = []
        for i, label in enumerate(labels):
            record: dict[str, Any] = {
                "id": rid if n == 1 else f"{rid}#{i}",
                "time": stamp,
                "model": response["model_name"],
                "version": version,
                "prediction": label,
            }
            if proba_rows is not None:
                record["proba"] = dict(zip(class_keys, proba_rows[i], strict=True))
            if self.log_features and features is not None:
                record["features"] = {k: v[i] for k, v in features.items()}
            records.append(record)
        self.write(records)
        return len(records)

    def close(self) -> None:
        """Close the open segment."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
