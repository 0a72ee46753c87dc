"""The Kubernetes API as refit's cluster clients use it (the KServe target, the TrainJob runner).

One ``CustomObjectsApi`` from the in-cluster configuration or else the kubeconfig; one call
wrapper that turns ``ApiException`` and connection errors into the caller's refit error with
the API server's message; one polling loop with a deadline. The ``kubernetes`` package is
imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from refit.errors import RefitError

__all__ = ["Poll", "api_message", "call", "custom_objects_api"]


def custom_objects_api(what: str, error: type[RefitError]) -> Any:
    """Return a ``CustomObjectsApi`` configured in-cluster, or else from the kubeconfig.

    Args:
        what: What the client is for, as error messages name it ("the TrainJob").
        error: The refit error class raised.

    Raises:
        RefitError: (``error``) Not in a cluster and no usable kubeconfig.
    """
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        try:
            k8s_config.load_kube_config()
        except (k8s_config.ConfigException, OSError) as exc:
            raise error(
                f"no Kubernetes configuration for {what}: not in a cluster and no usable "
                f"kubeconfig ({exc})"
            ) from exc
    return k8s_client.CustomObjectsApi()


def call(
    op: str,
    fn: Callable[..., Any],
    *args: Any,
    timeout_s: float,
    error: type[RefitError],
    missing_ok: bool = False,
) -> Any:
    """Call one Kubernetes API method; its errors become ``error`` naming ``op``.

    Args:
        op: What the call does, as error messages name it ("create TrainJob 'x'").
        fn: The API method.
        *args: Its positional arguments.
        timeout_s: The request's timeout (``_request_timeout``).
        error: The refit error class raised.
        missing_ok: Return None on HTTP 404 instead of raising.

    Returns:
        The method's result (None for a missing object with ``missing_ok``).

    Raises:
        RefitError: (``error``) The API answered with an error, or could not be reached.
    """
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, _request_timeout=timeout_s)
    except ApiException as exc:
        if missing_ok and exc.status == 404:
            return None
        raise error(f"{op} failed: HTTP {exc.status} {exc.reason}{api_message(exc)}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise error(f"{op} failed: the Kubernetes API is unreachable ({exc})") from exc


def api_message(exc: Any) -> str:
    """Return ``": <message>"`` from an ``ApiException``'s JSON Status body ("" when none)."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message}" if message else ""


class Poll:
    """Rounds of a watch with a deadline: probe, stop once ``timeout_s`` passed, else sleep.

    Iterating yields once per round; the caller probes and leaves the loop when the probe
    succeeds. The loop ends by itself (without a last sleep) when a probe finds the deadline
    passed; code after the loop handles the timeout.

    Args:
        timeout_s: Seconds from the first round after which no new round starts.
        poll_s: Seconds slept between rounds.
        clock: Monotonic clock (seconds).
        sleep: Sleep function.
    """

    def __init__(
        self,
        timeout_s: float,
        poll_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        self._start = clock()

    def elapsed(self) -> float:
        """Seconds since the watch began."""
        return self._clock() - self._start

    def __iter__(self) -> Iterator[None]:
        self._start = self._clock()
        while True:
            yield
            if self.elapsed() >= self.timeout_s:
                return
            self._sleep(self.poll_s)
