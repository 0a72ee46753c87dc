"""Fuzz corpus: the model server (``refit serve-model``) against a client's mistakes and attacks.

Every bad request answers a 4xx whose ``error`` names the input and what is wrong, is counted
with its 4xx code, and never reaches the ``code=~"5.."`` series that canary analysis reads. The
issue's request (50 MB, 10^7 elements) is refused with 413 before it is parsed, by a real
``refit serve-model`` process whose peak memory is read from ``/proc``.
"""

from __future__ import annotations

import json
import select
import socket
from pathlib import Path

import httpx
import pytest
from _corpus import assert_client_error
from _models import register_models, serving_models
from _prometheus import PrometheusServer
from _servers import ModelServeProcess, UvicornThread
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from refit.registry import ModelRegistry
from refit.serving import CANARY_STATE_KEY, RequestLimits, create_app

NAME = "credit"
INFER = f"/v2/models/{NAME}/infer"


@pytest.fixture(scope="module")
def store(windows, tmp_path_factory) -> ModelRegistry:
    """v1 (logistic regression) the champion, v2 (XGBoost) registered."""
    root = tmp_path_factory.mktemp("fuzz-serve")
    reg = ModelRegistry(str(root / "store"), NAME)
    register_models(reg, root, serving_models(windows, 10), snapshot_sha256="0" * 64)
    reg.set_alias("champion", 1)
    return reg


@pytest.fixture(scope="module")
def features(store) -> tuple[list[str], list[str]]:
    spec = store.load_model(1).spec
    return list(spec.numeric), list(spec.categorical)


def good_body(features, n: int = 2, **override) -> dict:
    numeric, categorical = features
    inputs = [{"name": f, "shape": [n], "datatype": "FP64", "data": [1.0] * n} for f in numeric]
    inputs += [
        {"name": f, "shape": [n], "datatype": "BYTES", "data": ["x"] * n} for f in categorical
    ]
    for name, fields in override.items():
        inputs = [({**i, **fields} if i["name"] == name else i) for i in inputs]
    return {"inputs": inputs}


def first(features) -> str:
    return features[0][0]


def raw(body: dict) -> bytes:
    return json.dumps(body).encode()


def with_data(features, text: str, datatype: str = "FP64") -> bytes:
    """A good body whose first numeric tensor's ``data`` is the raw JSON ``text``."""
    body = good_body(features, n=1)
    body["inputs"][0]["datatype"] = datatype
    body["inputs"][0]["data"] = "@@"
    return raw(body).replace(b'"@@"', text.encode())


# (id, body builder(features) -> bytes | dict, headers, status, names the answer must hold)
CASES = [
    ("not-json", lambda f: b"{not json", {}, 400, ["not json"]),
    ("empty-body", lambda f: b"", {}, 400, ["not json"]),
    ("not-utf8", lambda f: b"\xff\xfe\x00{", {}, 400, ["not json"]),
    ("nan", lambda f: with_data(f, "[NaN]"), {}, 400, ["NaN", "null"]),
    ("infinity", lambda f: with_data(f, "[Infinity]"), {}, 400, ["Infinity"]),
    ("minus-infinity", lambda f: with_data(f, "[-Infinity]"), {}, 400, ["-Infinity"]),
    ("1e400", lambda f: with_data(f, "[1e400]"), {}, 400, ["element 0", "not a finite number"]),
    ("10**400", lambda f: with_data(f, f"[{10**400}]"), {}, 400, ["not a finite number"]),
    ("10**5000 digits", lambda f: with_data(f, "[" + "9" * 5000 + "]"), {}, 400, ["digits"]),
    ("int8-300", lambda f: with_data(f, "[300]", "INT8"), {}, 400, ["out of range", "INT8"]),
    ("uint8-negative", lambda f: with_data(f, "[-1]", "UINT8"), {}, 400, ["negative", "UINT8"]),
    ("fp32-1e39", lambda f: with_data(f, "[1e39]", "FP32"), {}, 400, ["out of range", "FP32"]),
    ("bytes-inf", lambda f: with_data(f, '["inf"]', "BYTES"), {}, 400, ["not a finite number"]),
    ("bytes-nan", lambda f: with_data(f, '["nan"]', "BYTES"), {}, 400, ["not a finite number"]),
    ("bool-as-number", lambda f: with_data(f, "[true]"), {}, 400, ["True", "not a number"]),
    ("bool-datatype", lambda f: with_data(f, "[1]", "BOOL"), {}, 400, ["not a boolean"]),
    ("string-number", lambda f: with_data(f, '["abc"]'), {}, 400, ["'abc'", "not a number"]),
    ("object-element", lambda f: with_data(f, '[{"a": 1}]'), {}, 400, ["not a number"]),
    (
        "data-deeper-than-max-depth",
        lambda f: with_data(f, "[" * 9 + "1" + "]" * 9),
        {},
        413,
        ["max_depth"],
    ),  # fmt: skip
    (
        "json-nested-100000",
        lambda f: b"[" * 100_000 + b"]" * 100_000,
        {},
        400,
        ["nested too deeply"],
    ),  # fmt: skip
    (
        "shape-9-dims",
        lambda f: raw(good_body(f, n=1, **{first(f): {"shape": [1] * 9}})),
        {},
        413,
        ["dimensions", "max_depth"],
    ),  # fmt: skip
    (
        "shape-10**7",
        lambda f: raw(good_body(f, n=1, **{first(f): {"shape": [10**7]}})),
        {},
        413,
        ["10000000", "max_elements"],
    ),  # fmt: skip
    (
        "shape-10**400",
        lambda f: raw(good_body(f, n=1, **{first(f): {"shape": [10**400]}})),
        {},
        413,
        ["max_elements"],
    ),  # fmt: skip
    (
        "shape-negative",
        lambda f: raw(good_body(f, n=1, **{first(f): {"shape": [-1]}})),
        {},
        400,
        ["shape", "non-negative"],
    ),  # fmt: skip
    (
        "shape-string",
        lambda f: raw(good_body(f, n=1, **{first(f): {"shape": "1"}})),
        {},
        400,
        ["shape"],
    ),  # fmt: skip
    (
        "data-longer-than-shape",
        lambda f: raw(good_body(f, n=1, **{first(f): {"data": [1, 2]}})),
        {},
        400,
        ["more than the 1 element"],
    ),  # fmt: skip
    (
        "data-shorter-than-shape",
        lambda f: raw(good_body(f, n=1, **{first(f): {"shape": [3]}})),
        {},
        400,
        ["holds 3 element"],
    ),  # fmt: skip
    (
        "rows-disagree",
        lambda f: raw(good_body(f, n=2, **{first(f): {"shape": [1], "data": [1]}})),
        {},
        400,
        ["row(s)", "same N"],
    ),  # fmt: skip
    (
        "datatype-unknown",
        lambda f: raw(good_body(f, **{first(f): {"datatype": "FLOAT"}})),
        {},
        400,
        ["datatype 'FLOAT'"],
    ),  # fmt: skip
    (
        "datatype-list",
        lambda f: raw(good_body(f, **{first(f): {"datatype": ["FP64"]}})),
        {},
        400,
        ["datatype ['FP64']"],
    ),  # fmt: skip
    (
        "categorical-number",
        lambda f: raw(good_body(f, **{f[1][0]: {"data": [1, 2]}})),
        {},
        400,
        ["categorical"],
    ),  # fmt: skip
    ("no-inputs", lambda f: {"outputs": []}, {}, 400, ["non-empty 'inputs'"]),
    ("body-list", lambda f: [1, 2], {}, 400, ["JSON object", "list"]),
    ("id-number", lambda f: {**good_body(f), "id": 7}, {}, 400, ["'id' must be a string"]),
    ("parameters-list", lambda f: {**good_body(f), "parameters": [1]}, {}, 400, ["parameters"]),
    (
        "outputs-unknown",
        lambda f: {**good_body(f), "outputs": [{"name": "proba"}]},
        {},
        400,
        ["'proba'"],
    ),  # fmt: skip
    (
        "outputs-unhashable",
        lambda f: {**good_body(f), "outputs": [{"name": ["x"]}]},
        {},
        400,
        ["outputs[0]"],
    ),  # fmt: skip
    (
        "name-1MB",
        lambda f: {
            "inputs": [{"name": "x" * 2**20, "shape": [1], "datatype": "FP64", "data": [1]}]
        },
        {},
        400,
        ["at most 256 characters"],
    ),  # fmt: skip
    (
        "duplicate-input",
        lambda f: {"inputs": good_body(f)["inputs"] * 2},
        {},
        400,
        ["more than once"],
    ),  # fmt: skip
    (
        "unknown-feature",
        lambda f: {
            "inputs": [
                *good_body(f)["inputs"],
                {"name": "zz", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            ]
        },
        {},
        400,
        ["['zz']", "not features"],
    ),  # fmt: skip
    (
        "octet-stream",
        lambda f: good_body(f),
        {"content-type": "application/octet-stream"},
        415,
        ["application/octet-stream", "JSON"],
    ),  # fmt: skip
    (
        "multipart",
        lambda f: good_body(f),
        {"content-type": "multipart/form-data; boundary=x"},
        415,
        ["multipart/form-data"],
    ),  # fmt: skip
]


@pytest.fixture(scope="module")
def client(store) -> TestClient:
    return TestClient(create_app(store.store_uri, NAME, state_refresh_seconds=0))


def requests_by_code(client: TestClient) -> dict[tuple[str, str], float]:
    text = client.get("/metrics").text
    return {
        (s.labels["revision"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "refit_model_requests_total"
    }


@pytest.mark.parametrize(
    ("body", "headers", "status", "names"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_bad_request_is_a_4xx_naming_what_is_wrong(
    client, features, body, headers, status, names
):
    before = requests_by_code(client)
    payload = body(features)
    content = payload if isinstance(payload, bytes) else raw(payload)
    response = client.post(
        INFER, content=content, headers={"content-type": "application/json", **headers}
    )
    assert_client_error(response, *names, status=status)
    assert set(response.json()) == {"error"}  # the V2 error format
    after = requests_by_code(client)
    # Counted once, with its own 4xx code on the champion's revision; no 5xx anywhere.
    assert after.get(("v1", str(status)), 0) == before.get(("v1", str(status)), 0) + 1
    assert not [key for key in after if key[1].startswith("5")]


@pytest.mark.parametrize(
    ("path", "status", "names"),
    [
        ("/v2/models/other/infer", 404, ["'other'", "not served here"]),
        (f"/v2/models/{NAME}/versions/latest/infer", 400, ["'latest'", "positive integer"]),
        (f"/v2/models/{NAME}/versions/0/infer", 400, ["'0'", "positive integer"]),
        (f"/v2/models/{NAME}/versions/99/infer", 404, ["no version 99"]),
        (f"/v2/models/{NAME}/versions/{'9' * 5000}/infer", 404, ["has no version 999"]),
        (
            f"/v2/models/{NAME}/versions/\u00b2/infer",
            400,
            ["positive integer"],
        ),  # a digit to isdigit
        (f"/v2/models/{NAME}/versions/{'x' * 5000}/infer", 400, ["'xxxx", "positive integer"]),
    ],
)
def test_unknown_models_and_versions_are_4xx(client, features, path, status, names):
    assert_client_error(client.post(path, json=good_body(features)), *names, status=status)


def test_a_good_request_still_answers(client, features):
    response = client.post(INFER, json=good_body(features, n=3))
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [3]


def test_the_body_limit_is_checked_on_content_length_and_while_streaming(store, features):
    limits = RequestLimits(max_body_bytes=4096)
    client = TestClient(create_app(store.store_uri, NAME, limits=limits, state_refresh_seconds=0))
    big = raw(good_body(features, n=200))
    assert len(big) > 4096
    answer = assert_client_error(
        client.post(INFER, content=big, headers={"content-type": "application/json"}),
        "4096",
        "max_body_bytes",
        status=413,
    )
    assert "Content-Length" in answer
    pulled = []

    def chunks():  # no Content-Length: chunked transfer, counted as it streams in
        for i in range(0, len(big), 1024):
            pulled.append(i)
            yield big[i : i + 1024]

    answer = assert_client_error(
        client.post(INFER, content=chunks(), headers={"content-type": "application/json"}),
        "4096",
        "max_body_bytes",
        status=413,
    )
    assert "Content-Length" not in answer
    assert requests_by_code(client)[("v1", "413")] == 2
    assert client.post(INFER, json=good_body(features, n=2)).status_code == 200


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _post_streaming(port: int, total: int, chunk: bytes, declared: bool) -> tuple[bytes, int]:
    """POST ``total`` bytes of ``chunk`` over a raw socket; stop sending once an answer comes.

    Returns the answer and the bytes sent before it came.
    """
    head = f"POST {INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {total}\r\n" if declared else "Transfer-Encoding: chunked\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    answer, sent = b"", 0
    try:
        sock.sendall((head + "\r\n").encode())
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body was complete
            piece = chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        sock.close()
    return answer, sent


def test_the_issues_50_mb_request_is_refused_before_parsing_by_a_real_server(store, features):
    """The issue: a 50 MB, 10^7-element request grew the server to 1.1 GB. Now: 413 at once."""
    n = 10**7
    body = (
        b'{"inputs":[{"name":"' + first(features).encode() + b'","shape":[%d],' % n
        + b'"datatype":"FP64","data":[' + b",".join([b"0.25"] * n) + b"]}]}"
    )  # fmt: skip
    assert len(body) > 50_000_000
    server = ModelServeProcess(store.store_uri, NAME)
    try:
        assert server.client.get("/v2/health/ready").status_code == 200
        baseline = _peak_kib(server.proc.pid)
        response = server.client.post(
            INFER, content=body, headers={"content-type": "application/json"}
        )
        assert_client_error(response, f"{len(body)} bytes", "max_body_bytes", status=413)
        # Chunked, with no Content-Length to refuse on: counted while it streams in.
        chunk = b"0.25," * 13_107  # 64 KiB
        answer, sent = _post_streaming(server.port, 50 * 2**20, chunk, declared=False)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b"max_body_bytes" in answer
        assert sent < 50 * 2**20  # answered before the client sent it all
        grown = _peak_kib(server.proc.pid) - baseline
        assert grown < 64 * 1024, f"the server's peak memory grew by {grown} KiB"
        assert server.client.get("/v2/health/live").status_code == 200
    finally:
        server.stop()


def test_client_errors_do_not_move_the_canary_error_series(store, features):
    """Real Prometheus scrapes a real server; the "local" preset's queries read the series."""
    from refit.deploy.analysis import CheckContext, render_query
    from refit.deploy.prometheus import QUERY_PRESETS, PrometheusClient

    store.write_state(CANARY_STATE_KEY, {"version": 2, "percent": 50})
    server = UvicornThread(create_app(store.store_uri, NAME, seed=3, state_refresh_seconds=0))
    try:
        with PrometheusServer([f"127.0.0.1:{server.port}"], scrape_interval="1s") as prom:
            client = httpx.Client(base_url=server.url, timeout=60)
            pinned = f"/v2/models/{NAME}/versions/2/infer"
            bad = [case for case in CASES if case[0] not in ("octet-stream", "multipart")]
            total = f'sum(refit_model_requests_total{{model="{NAME}",revision="v2"}})'
            sent = 0
            # Two rounds, each scraped: increase() sees a series grow only after its first
            # sample, so every code series (and a 5xx one, were 4xx miscounted) grows in round 2.
            for _ in range(2):
                for _, body, _, status, _ in bad:
                    payload = body(features)
                    content = payload if isinstance(payload, bytes) else raw(payload)
                    headers = {"content-type": "text/plain"}  # curl -d's cousin: accepted
                    assert (
                        client.post(pinned, content=content, headers=headers).status_code == status
                    )
                for _ in range(3):
                    assert client.post(pinned, json=good_body(features)).status_code == 200
                sent += len(bad) + 3
                prom.wait_for(total, lambda v, n=sent: v is not None and v >= n, timeout=60)
            ctx = CheckContext(
                model=NAME,
                namespace="",
                primary_revision="v1",
                canary_revision="v2",
                window_seconds=60,
                step_percent=50,
                elapsed_seconds=60,
            )
            preset = QUERY_PRESETS["local"]
            requests = render_query(preset["canary_requests"], ctx, window_seconds=60)
            errors = render_query(preset["canary_errors"], ctx, window_seconds=60)
            client_errors = prom.query(
                f'sum(refit_model_requests_total{{model="{NAME}",revision="v2",code=~"4.."}})'
            )
            assert client_errors == 2 * len(bad)  # the 4xx are in the series, with their codes
            reader = PrometheusClient(prom.url)
            assert (reader.query(requests) or 0) >= len(bad)  # round 2 is seen as an increase
            assert reader.query(errors) in (None, 0.0), "4xx counted as canary errors"
    finally:
        server.close()
        store.write_state(CANARY_STATE_KEY, {"version": None})
