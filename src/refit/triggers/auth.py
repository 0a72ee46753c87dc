"""Hook authentication: a bearer token or an HMAC-SHA256 signature of the body.

The secret comes from ``REFIT_HOOK_TOKEN`` or from the file named by ``REFIT_HOOK_TOKEN_FILE``
(a mounted Kubernetes secret), never from code or configuration files. Requests carry either
``Authorization: Bearer <secret>`` or ``X-Refit-Signature: sha256=<hex HMAC-SHA256 of the raw
body keyed by the secret>``. Comparisons are constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from refit.triggers.config import TriggerConfigError

TOKEN_ENV = "REFIT_HOOK_TOKEN"
TOKEN_FILE_ENV = "REFIT_HOOK_TOKEN_FILE"
SIGNATURE_HEADER = "x-refit-signature"


def load_secret(environ: Mapping[str, str] | None = None) -> bytes:
    """Read the hook secret from the environment or the file it names.

    Raises:
        TriggerConfigError: Neither variable set, the file unreadable, or the secret empty.
    """
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "")
    if not token and env.get(TOKEN_FILE_ENV):
        path = Path(env[TOKEN_FILE_ENV])
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise TriggerConfigError(
                f"cannot read the hook token file {path} named by {TOKEN_FILE_ENV}: {exc}"
            ) from None
        if not token:
            raise TriggerConfigError(f"hook token file {path} ({TOKEN_FILE_ENV}) is empty")
    if not token:
        raise TriggerConfigError(
            f"no hook secret: set {TOKEN_ENV}, or {TOKEN_FILE_ENV} to a file holding it; "
            "the trigger service refuses to start without authentication"
        )
    if len(token) < 16:
        raise TriggerConfigError(f"hook secret from {TOKEN_ENV} is too short (< 16 characters)")
    return token.encode()


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Refit-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check(secret: bytes, authorization: str | None, signature: str | None, body: bytes) -> str:
    """Why the request is not authenticated, or ``""`` when it is."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), secret):
            return ""
        if not signature:
            return "bearer token does not match"
    if signature:
        if hmac.compare_digest(signature.strip().encode(), sign(secret, body).encode()):
            return ""
        return "signature does not match the body"
    return "missing Authorization: Bearer token or X-Refit-Signature"
