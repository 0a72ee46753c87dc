"""Fuzz corpus: the trigger service's HTTP app against bad payloads, oversize bodies and no auth.

Every bad request answers a 4xx whose ``detail`` names the input and what is wrong; nothing is
launched; ``/runs`` needs the hooks' authentication.
"""

from __future__ import annotations

import base64
import json

import pytest
from _alertmanager import webhook
from _corpus import assert_client_error
from fastapi.testclient import TestClient

from refit.triggers.app import create_app
from refit.triggers.config import ServiceConfig
from refit.triggers.launchers import LogLauncher
from refit.triggers.service import TriggerService

SECRET = b"fuzz-hook-secret-0123456789"
AUTH = {"Authorization": f"Bearer {SECRET.decode()}"}
LIMIT = 16 * 1024


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-triggers")
    config = ServiceConfig.from_dict(
        {
            "state_path": str(root / "state.db"),
            "max_body_bytes": LIMIT,
            "models": {
                "churn": {
                    "policy": {"drift_share_threshold": 0.3},
                    "params": {"data_uri": "gs://c/latest.parquet", "store_uri": "gs://c/store"},
                    "storage_prefixes": ["gs://c/incoming/"],
                }
            },
        }
    )
    launcher = LogLauncher()
    service = TriggerService(config, launcher, retry_seconds=3600)
    client = TestClient(create_app(service, SECRET, manage=False))
    yield client, launcher
    service.state.close()


def generic(**fields) -> bytes:
    return json.dumps({"event_id": "e-1", "model": "churn", **fields}).encode()


def raw_generic(value: str, field: str = "drift_share") -> bytes:
    """A generic event whose ``field`` is the raw JSON ``value`` (NaN, huge numbers...)."""
    return generic(**{field: "@@"}).replace(b'"@@"', value.encode())


def storage(data: bytes) -> bytes:
    return json.dumps(
        {
            "message": {
                "messageId": "m-1",
                "attributes": {
                    "eventType": "OBJECT_FINALIZE",
                    "bucketId": "c",
                    "objectId": "incoming/1.csv",
                },
                "data": base64.b64encode(data).decode(),
            }
        }
    ).encode()


def alert(**annotations) -> bytes:
    body = webhook("churn", "g", annotations=annotations, alertname="Drift")
    return json.dumps(body).encode()


# (id, path, body, headers, status, names)
CASES = [
    ("not-json", "/hooks/generic", b"{not json", AUTH, 422, ["not valid JSON"]),
    ("not-utf8", "/hooks/generic", b"\xff\xfe{", AUTH, 422, ["not valid JSON"]),
    ("nan", "/hooks/generic", raw_generic("NaN"), AUTH, 422, ["NaN"]),
    ("infinity", "/hooks/generic", raw_generic("Infinity"), AUTH, 422, ["Infinity"]),
    ("1e400", "/hooks/generic", raw_generic("1e400"), AUTH, 422, ["drift_share", "finite"]),
    ("10**400", "/hooks/generic", raw_generic(str(10**400)), AUTH, 422, ["drift_share", "finite"]),
    (
        "10**400 rows",
        "/hooks/generic",
        raw_generic(str(10**400), "new_rows"),
        AUTH,
        422,
        ["new_rows", "finite"],
    ),  # fmt: skip
    ("5000 digits", "/hooks/generic", raw_generic("9" * 5000), AUTH, 422, ["digits"]),
    ("string drift", "/hooks/generic", generic(drift_share="inf"), AUTH, 422, ["finite"]),
    (
        "deep nesting",
        "/hooks/generic",
        b"[" * 5_000 + b"]" * 5_000,
        AUTH,
        422,
        ["nested too deeply"],
    ),  # fmt: skip
    ("model 1 MB", "/hooks/generic", generic(model="m" * 2**13), AUTH, 404, ["unknown model"]),
    ("model number", "/hooks/generic", generic(model=7), AUTH, 422, ["model must be"]),
    ("unknown field", "/hooks/generic", generic(extra=1), AUTH, 422, ["unknown field(s) extra"]),
    ("alert NaN", "/hooks/alertmanager", alert(drift_share="NaN"), AUTH, 422, ["drift_share"]),
    (
        "alert 1e400",
        "/hooks/alertmanager",
        alert(metric_value="1e400"),
        AUTH,
        422,
        ["metric_value", "finite"],
    ),  # fmt: skip
    ("alert version", "/hooks/alertmanager", b'{"version": ["4"]}', AUTH, 422, ["version"]),
    (
        "storage data deep",
        "/hooks/storage",
        storage(b"[" * 10_000),
        AUTH,
        422,
        ["message.data"],
    ),  # fmt: skip
    (
        "storage data NaN",
        "/hooks/storage",
        storage(b'{"metadata": {"rows": NaN}}'),
        AUTH,
        422,
        ["NaN"],
    ),  # fmt: skip
    (
        "storage rows 1e400",
        "/hooks/storage",
        storage(b'{"metadata": {"rows": 1e400}}'),
        AUTH,
        422,
        ["rows", "finite"],
    ),  # fmt: skip
    (
        "storage not base64",
        "/hooks/storage",
        storage(b"x").replace(b'"eA=="', b'"!!"'),
        AUTH,
        422,
        ["base64"],
    ),  # fmt: skip
    ("body over limit", "/hooks/generic", b" " * (LIMIT + 1), AUTH, 413, ["max_body_bytes"]),
    ("no auth", "/hooks/generic", generic(), {}, 401, ["unauthorized"]),
    ("approval NaN", "/approvals/churn/1/approve", b'{"by": NaN}', AUTH, 422, ["NaN"]),
    ("stream no auth", "/hooks/stream", b"{}", {}, 401, ["unauthorized"]),
    ("stream not JSON", "/hooks/stream", b"[0, 1", AUTH, 422, ["not valid JSON"]),
    (
        "stream NaN value",
        "/hooks/stream",
        b'{"batch_id": "b", "model": "churn", "stream": "errors", "values": [NaN]}',
        AUTH,
        422,
        ["NaN"],
    ),  # fmt: skip
    (
        "stream value out of range",
        "/hooks/stream",
        b'{"batch_id": "b", "model": "churn", "stream": "errors", "values": [0, -1]}',
        AUTH,
        422,
        ["values[1]", "[0.0, 1.0]"],
    ),  # fmt: skip
    (
        "stream unknown kind",
        "/hooks/stream",
        b'{"batch_id": "b", "model": "churn", "stream": "latency", "values": [0]}',
        AUTH,
        422,
        ["stream must be one of errors, confidence", "'latency'"],
    ),  # fmt: skip
    (
        "stream unknown model",
        "/hooks/stream",
        b'{"batch_id": "b", "model": "nope", "stream": "errors", "values": [0]}',
        AUTH,
        404,
        ["unknown model 'nope'"],
    ),  # fmt: skip
    ("stream over limit", "/hooks/stream", b" " * (LIMIT + 1), AUTH, 413, ["max_body_bytes"]),
    ("approval version", "/approvals/churn/x/approve", b'{"by": "a"}', AUTH, 422, ["version"]),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "names"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_bad_hook_is_a_4xx_naming_what_is_wrong(running, path, body, headers, status, names):
    client, launcher = running
    response = client.post(path, content=body, headers=headers)
    assert_client_error(response, *names, status=status)
    assert launcher.launched == []


def test_streamed_body_over_the_limit_is_413(running):
    client, _ = running

    def chunks():  # no Content-Length
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    response = client.post("/hooks/generic", content=chunks(), headers=AUTH)
    assert_client_error(response, f"{LIMIT} bytes", "max_body_bytes", status=413)


@pytest.mark.parametrize(
    ("params", "headers", "status", "names"),
    [
        ({}, {}, 401, ["unauthorized", "missing"]),
        ({}, {"Authorization": "Bearer not-the-secret-at-all"}, 401, ["does not match"]),
        ({"status": "x" * 500}, AUTH, 422, ["status must be one of", "'xxx"]),
        ({"limit": "-1"}, AUTH, 422, ["limit must be an integer from 1 to 1000"]),
        ({"limit": "abc"}, AUTH, 422, ["limit", "'abc'"]),
        ({"limit": "10000000000"}, AUTH, 422, ["limit"]),
    ],
)
def test_runs_needs_auth_and_checks_its_query(running, params, headers, status, names):
    client, _ = running
    response = client.get("/runs", params=params, headers=headers)
    assert_client_error(response, *names, status=status)


def test_runs_answers_with_auth(running):
    client, _ = running
    response = client.get("/runs", params={"status": "logged", "limit": "5"}, headers=AUTH)
    assert response.status_code == 200 and isinstance(response.json()["runs"], list)
