"""Open Inference Protocol (V2) request inputs built from rows of the demo data."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

#: The demo data's string features (sent as V2 ``BYTES``; every other feature is ``FP64``).
FEATURES_BYTES = frozenset({"region", "channel"})


def infer_inputs(rows: pa.Table) -> list[dict[str, Any]]:
    """The V2 ``inputs`` for demo rows: one tensor per feature (label and event time left out)."""
    return [
        {
            "name": c,
            "shape": [rows.num_rows],
            "datatype": "BYTES" if c in FEATURES_BYTES else "FP64",
            "data": rows.column(c).to_pylist(),
        }
        for c in rows.column_names
        if c not in ("event_time", "default")
    ]
