"""Prometheus for canary analysis: the HTTP client and the PromQL query presets.

- :class:`PrometheusClient` reads one number per PromQL expression from the HTTP API
  (``GET /api/v1/query``, an instant query): the sum of the returned series, or None when the
  answer is empty or NaN ("no data"). :class:`MetricsClient` is what checks need of it.
- :data:`QUERY_PRESETS` hold the PromQL templates for refit's local model server (``"local"``)
  and for KServe serverless deployments (``"kserve"``: Knative's queue-proxy metrics);
  :func:`promql_string` escapes label values filled into them.

The checks that read these numbers are :mod:`refit.deploy.analysis`.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from refit.errors import DeployError

__all__ = ["QUERY_PRESETS", "MetricsClient", "PrometheusClient", "promql_string"]


def _per_side(**templates: str) -> Mapping[str, str]:
    """Expand ``{revision}`` templates into ``canary_*`` and ``primary_*`` ones."""
    out: dict[str, str] = {}
    for side in ("canary", "primary"):
        for key, template in templates.items():
            out[f"{side}_{key}"] = template.replace("{revision}", "{" + side + "}")
    return MappingProxyType(out)


#: PromQL templates per preset. Keys: ``{canary,primary}_{requests,errors,latency}``; requests
#: and errors are counts over ``{window}``, latency is the ``{quantile}`` in seconds.
QUERY_PRESETS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        # refit's local model server (refit serve-model). Its exposition contract:
        #   counter   refit_model_requests_total{model, revision, code}   code: HTTP status
        #   histogram refit_model_request_duration_seconds{model, revision}   (_bucket, le)
        # revision is a served version's label, e.g. "v3"; errors are code=~"5..".
        "local": _per_side(
            requests=(
                'sum(increase(refit_model_requests_total{model="{model}",revision="{revision}"}'
                "[{window}]))"
            ),
            errors=(
                'sum(increase(refit_model_requests_total{model="{model}",revision="{revision}",'
                'code=~"5.."}[{window}]))'
            ),
            latency=(
                "histogram_quantile({quantile}, sum by (le) (rate("
                'refit_model_request_duration_seconds_bucket{model="{model}",'
                'revision="{revision}"}[{window}])))'
            ),
        ),
        # KServe serverless mode: every predictor revision is a Knative revision whose
        # queue-proxy sidecar exports request metrics on :9091 (OpenCensus-era names, Knative
        # Serving <= 1.18, the versions KServe installs by default):
        #   revision_request_count       counter, labels namespace_name, revision_name,
        #                                 response_code, response_code_class ("5xx"), ...
        #   revision_request_latencies   histogram in milliseconds (_bucket, le), same labels
        # Source: Knative docs "Service metrics" (knative.dev/docs/serving/services/
        # service-metrics/, "Queue proxy metrics") and knative/docs docs/serving/metrics.md.
        # The queue-proxy (not the *_app_* user-container) series are used: they include the
        # proxy's own rejections, which the clients see too. Latency is divided by 1000 to
        # seconds. Knative Serving 1.19+ exports OpenTelemetry names instead (e.g.
        # kn.* and http.server.request.duration); override the queries for those clusters.
        "kserve": _per_side(
            requests=(
                'sum(increase(revision_request_count{namespace_name="{namespace}",'
                'revision_name="{revision}"}[{window}]))'
            ),
            errors=(
                'sum(increase(revision_request_count{namespace_name="{namespace}",'
                'revision_name="{revision}",response_code_class="5xx"}[{window}]))'
            ),
            latency=(
                "histogram_quantile({quantile}, sum by (le) (rate("
                'revision_request_latencies_bucket{namespace_name="{namespace}",'
                'revision_name="{revision}"}[{window}]))) / 1000'
            ),
        ),
    }
)

_PROMQL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def promql_string(value: str) -> str:
    """Escape a label value for a double-quoted PromQL string."""
    return value.translate(_PROMQL_ESCAPES)


class MetricsClient(Protocol):
    """What the checks need from a metrics backend (PrometheusClient, or a test's fake)."""

    def query(self, promql: str) -> float | None:
        """Return the expression's value now, or None when there is no data."""
        ...


class PrometheusClient:
    """Instant queries against the Prometheus HTTP API.

    Args:
        url: Base URL, e.g. ``http://prometheus.monitoring:9090`` (a path prefix is kept).
        timeout: Seconds to wait for each answer.
        headers: Extra request headers (e.g. ``Authorization`` for a managed Prometheus).

    Raises:
        DeployError: An empty or non-HTTP URL, or a timeout that is not > 0.
    """

    def __init__(
        self, url: str, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise DeployError(f"Prometheus URL must be an http:// or https:// URL, got {url!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise DeployError(f"Prometheus timeout must be a number > 0, got {timeout!r}")
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"PrometheusClient({self.url!r}, timeout={self.timeout:g})"

    def query(self, promql: str) -> float | None:
        """Evaluate ``promql`` now and return one number.

        Several series are summed; NaN samples are left out. Returns None when the answer holds
        no series, or only NaN ("no data").

        Raises:
            DeployError: Prometheus cannot be reached, answers with an HTTP error or a
                non-success status, returns something that is not JSON, or returns a range
                vector or string (the message names the URL and the query).
        """
        endpoint = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        request = urllib.request.Request(
            endpoint, headers={"Accept": "application/json", **self.headers}
        )
        where = f"Prometheus at {self.url}, query {promql!r}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise DeployError(f"{where}: HTTP {exc.code} {_error_text(exc)}") from None
        except urllib.error.URLError as exc:
            raise DeployError(f"{where}: unreachable ({exc.reason})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise DeployError(f"{where}: unreachable ({type(exc).__name__}: {exc})") from None
        try:
            payload = json.loads(body)
        except ValueError:
            raise DeployError(f"{where}: the answer is not JSON: {body[:200]!r}") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            error = payload.get("error") if isinstance(payload, dict) else None
            raise DeployError(f"{where}: query failed: {error or payload!r}")
        return _vector_value(payload.get("data"), where)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read()
    except OSError:
        return str(exc.reason)
    try:
        payload = json.loads(body)
        return f"{payload.get('errorType', '')}: {payload.get('error', '')}".strip(": ")
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace") or str(exc.reason)


def _vector_value(data: Any, where: str) -> float | None:
    if not isinstance(data, dict):
        raise DeployError(f"{where}: the answer has no data: {data!r}")
    kind = data.get("resultType")
    result: Any = data.get("result")  # malformed (None too) raises below
    try:
        if kind == "vector":
            samples = [float(series["value"][1]) for series in result]
        elif kind == "scalar":
            samples = [float(result[1])]
        else:
            raise DeployError(
                f"{where}: returned a {kind!r}; expected an instant vector or a scalar"
            )
    except (TypeError, KeyError, IndexError, ValueError):
        raise DeployError(f"{where}: malformed {kind} answer: {result!r}") from None
    samples = [s for s in samples if not math.isnan(s)]
    return sum(samples) if samples else None
