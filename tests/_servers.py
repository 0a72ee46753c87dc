"""Real servers on loopback for the e2e tests: Prism (the KFP API contract), a recording proxy,
uvicorn serving an ASGI app in a thread, ``refit serve`` and ``refit serve-model`` in a
subprocess, and the base of the Prometheus and Alertmanager servers (``BinaryServer``)."""

from __future__ import annotations

import copy
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO.parent / "shared" / "specs"
KFP_SPEC = SPECS / "kfp-api-v2beta1.swagger.json"
PRISM = REPO / ".tools" / "node_modules" / ".bin" / "prism"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_kfp_spec() -> Path:
    """The KFP swagger from the shared specs folder (CI keeps it beside the checkout)."""
    if not SPECS.is_dir():
        pytest.fail(f"shared specs folder {SPECS} is absent: clone refit beside shared/")
    if not KFP_SPEC.is_file():
        pytest.fail(f"{KFP_SPEC} is missing from the shared specs folder")
    return KFP_SPEC


def adjust_kfp_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The two adjustments of ../shared/specs/README.md, on a copy.

    ``format: byte`` fields get a valid base64 example; ``int64``/``uint64`` string fields also
    accept JSON numbers (the SDK sends integers, grpc-gateway accepts them).
    """
    spec = copy.deepcopy(spec)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("format") == "byte":
                node["example"] = "cmVmaXQ="
            if node.get("type") == "string" and node.get("format") in ("int64", "uint64"):
                node["type"] = ["string", "integer"]
                del node["format"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec.get("definitions", {}))
    return spec


def wait_for_http(
    host: str,
    port: int,
    path: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    *,
    status: int | None = None,
) -> None:
    """Poll ``GET path`` until an HTTP answer comes, or fail after ``timeout`` seconds.

    Args:
        host: The server's host.
        port: Its port.
        path: The path to poll.
        timeout: Seconds to wait.
        proc: The server's process: its exit ends the wait at once.
        status: The status the answer must have (any, when None).

    Raises:
        RuntimeError: ``proc`` exited, or no (such) answer came in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            if status is None or response.status == status:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer from http://{host}:{port}{path} after {timeout} s")


def find_binary(candidates: Iterable[str | None]) -> str | None:
    """The first of ``candidates`` (paths; None for a lookup that found nothing) that is an
    executable file, or None."""
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop ``proc`` gracefully (SIGTERM); kill it if it has not exited after ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class BinaryServer:
    """A server binary on a free 127.0.0.1 port, with a throwaway folder, ready at ``/-/ready``.

    The base of Prometheus and Alertmanager, which take ``--config.file`` and
    ``--web.listen-address``: a subclass names the server (``name``), gives its other flags
    (``options``) and calls ``launch`` with its configuration. Use it as a context manager, or
    call ``close()``.
    """

    name = "server"

    def __init__(self, binary: str, prefix: str) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.config = self.dir / f"{self.name.lower()}.yml"
        self.log_path = self.dir / f"{self.name.lower()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def options(self) -> list[str]:
        """The flags other than the config file and the listen address."""
        raise NotImplementedError

    def command(self, port: int) -> list[str]:
        """The command line that serves on ``127.0.0.1:port``."""
        return [
            self.binary,
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{port}",
            *self.options(),
        ]

    def launch(self, config: dict[str, Any], timeout: float) -> None:
        """Write ``config`` (as YAML), start the server and wait until it is ready.

        On failure it cleans up before raising.

        Raises:
            RuntimeError: It exited or did not become ready (the message holds its log).
        """
        try:
            self.config.write_text(yaml.safe_dump(config, sort_keys=False))
            self._start(timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> None:
        last_error = ""
        for _attempt in range(3):  # a free port can be taken before the bind: try a few
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.command(self.port),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                wait_for_http("127.0.0.1", self.port, "/-/ready", timeout, self.proc, status=200)
                return
            except RuntimeError as exc:
                last_error = f"{self.name} was not ready: {exc}:\n{self.log_tail()}"
                if self.proc.poll() is None:  # running but not ready: not a port clash
                    raise RuntimeError(last_error) from None
        raise RuntimeError(last_error)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop the server and remove its files."""
        if self.proc is not None:
            stop_process(self.proc, 10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Prism:
    """``prism mock`` serving the adjusted KFP swagger on a free loopback port."""

    def __init__(self, tmp: Path) -> None:
        source = require_kfp_spec()
        if not PRISM.exists():
            pytest.fail(
                f"Prism is not installed at {PRISM}: run `./dev test` (its setup_test_tools "
                "installs it) or `npm install --prefix .tools @stoplight/prism-cli@5`"
            )
        spec_path = tmp / "kfp-api-adjusted.swagger.json"
        spec_path.write_text(json.dumps(adjust_kfp_spec(json.loads(source.read_text()))))
        self.port = free_port()
        self.log = open(tmp / "prism.log", "w+b")
        self.proc = subprocess.Popen(
            [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(self.port), str(spec_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            wait_for_http("127.0.0.1", self.port, "/apis/v2beta1/healthz", 60, self.proc)
        except RuntimeError as exc:
            self.close()
            self.log.seek(0)
            pytest.fail(f"Prism did not start: {exc}\n{self.log.read().decode()[-3000:]}")

    def close(self) -> None:
        """Stop Prism."""
        stop_process(self.proc, 10)
        self.log.close()


class RecordingProxy:
    """A loopback HTTP proxy that records every request and forwards it to ``upstream``.

    ``overrides[(method, path)] = (status, json)`` answers a request itself instead (Prism keeps
    no state, so a test that needs "the server already has X" says so here).
    """

    def __init__(self, upstream_port: int) -> None:
        self.requests: list[dict[str, Any]] = []
        self.overrides: dict[tuple[str, str], tuple[int, Any]] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path_only = self.path.split("?", 1)[0]
                record: dict[str, Any] = {
                    "method": self.command,
                    "path": self.path,
                    "route": path_only,
                    "content_type": self.headers.get("Content-Type", ""),
                    "authorization": self.headers.get("Authorization", ""),
                    "body": body,
                }
                override = proxy.overrides.get((self.command, path_only))
                if override is not None:
                    status, payload = override
                    data = json.dumps(payload).encode()
                    headers = {"Content-Type": "application/json"}
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                    fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
                    conn.request(self.command, self.path, body=body, headers=fwd)
                    resp = conn.getresponse()
                    status, data = resp.status, resp.read()
                    headers = {"Content-Type": resp.getheader("Content-Type", "")}
                    conn.close()
                record["status"] = status
                record["response"] = data
                proxy.requests.append(record)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def find(self, method: str, route: str) -> list[dict[str, Any]]:
        """Recorded requests with this method and path (query excluded)."""
        return [r for r in self.requests if r["method"] == method and r["route"] == route]

    def close(self) -> None:
        """Stop the proxy."""
        self.server.shutdown()
        self.server.server_close()


class UvicornThread:
    """Serve an ASGI app with uvicorn in a thread on a free loopback port."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop the server and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(20)


def which_node() -> str | None:
    """Path of node, if installed."""
    return shutil.which("node")


async def blast(
    host: str,
    port: int,
    path: str,
    body: bytes | list[bytes],
    headers: dict[str, str],
    n: int,
    concurrency: int,
    latencies: list[float] | None = None,
) -> list[tuple[int, bytes]]:
    """Send ``n`` POSTs over ``concurrency`` keep-alive connections (raw asyncio).

    ``body`` is one body, or a list whose bodies are sent in turn.

    A minimal HTTP/1.1 client: httpx's async pool spends more CPU than the server under test
    at this concurrency on two cores. Responses must carry Content-Length (uvicorn's do).
    """
    import asyncio

    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\n{extra}\r\n"
        ).encode()
        + b
        for b in ([body] if isinstance(body, bytes) else body)
    ]
    sent = [0]
    results: list[tuple[int, bytes]] = []
    counts = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]

    async def connection(count: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(count):
                started = time.perf_counter()
                writer.write(requests[sent[0] % len(requests)])
                sent[0] += 1
                status_line = await reader.readline()
                status = int(status_line.split()[1])
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value.strip())
                payload = await reader.readexactly(length)
                if latencies is not None:
                    latencies.append(time.perf_counter() - started)
                results.append((status, payload))
        finally:
            writer.close()

    await asyncio.gather(*(connection(c) for c in counts if c))
    return results


def fleet_config(folder: Path, names: Iterable[str], schedule: str, max_in_flight: int) -> Path:
    """Write ``folder/serve.json``: a trigger config of the models ``names`` for ``refit serve``.

    Each model has a drift policy, its own data URI and the cron ``schedule``; all share one
    store (``folder/store``, made here) and one state; no cooldown.

    Returns:
        The config's path.
    """
    store = folder / "store"
    store.mkdir(exist_ok=True)
    config = folder / "serve.json"
    models = {
        name: {
            "policy": {"drift_share_threshold": 0.3},
            "params": {"store_uri": str(store), "data_uri": f"gs://fleet/{name}/latest.parquet"},
            "schedule": schedule,
        }
        for name in names
    }
    config.write_text(
        json.dumps(
            {
                "store_uri": str(store),
                "state_path": str(folder / "state.db"),
                "cooldown_seconds": 0,
                "max_in_flight": max_in_flight,
                "models": models,
            }
        )
    )
    return config


class ServeProcess:
    """``refit serve-triggers`` in a subprocess on a free loopback port."""

    def __init__(
        self,
        config_path: Path,
        secret: str,
        launcher: str = "log",
        env: dict[str, str] | None = None,
    ) -> None:
        import sys

        self.port = free_port()
        self.args = [
            str(Path(sys.executable).parent / "refit"), "serve-triggers",
            "--config", str(config_path), "--launcher", launcher,
            "--listen-host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        self.env = {**os.environ, "REFIT_HOOK_TOKEN": secret, **(env or {})}
        self.start()

    def start(self) -> None:
        """Start the server and wait for /healthz."""
        import tempfile

        # A file, not a pipe: an unread pipe fills up and blocks the server.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            # Startup imports the pipeline and compiles it to check the config: allow for a
            # busy machine.
            wait_for_http("127.0.0.1", self.port, "/healthz", 120, self.proc)
        except RuntimeError as exc:
            self.proc.kill()
            self.proc.wait()
            self.log.seek(0)
            err = self.log.read().decode()[-3000:]
            raise RuntimeError(f"refit serve-triggers did not start: {exc}\n{err}") from None

    def stop(self) -> None:
        """Stop it gracefully (SIGTERM), as a rolling restart would."""
        stop_process(self.proc, 20)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """The end of the server's log."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]


class ModelServeProcess:
    """``refit serve-model`` in a subprocess on a free loopback port."""

    def __init__(
        self, store: str, name: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        refit = str(Path(sys.executable).parent / "refit")
        args = [refit, "serve-model", "--store", store, "--model", name, "--port", str(self.port)]
        # A file, not a pipe: an unread pipe fills up and blocks the server.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*args, *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            wait_for_http("127.0.0.1", self.port, "/v2/health/live", 60, self.proc)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"refit serve-model did not start: {exc}\n{self.output()}") from None
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode()[-4000:]

    def stop(self) -> None:
        stop_process(self.proc, 20)
