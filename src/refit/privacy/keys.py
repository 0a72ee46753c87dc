"""The tokenization key: read from the environment or a mounted Secret, never shown.

The key is the secret of keyed HMAC-SHA256 tokenization. It is read as bytes (an environment
variable's UTF-8 bytes, or a file's bytes less one trailing newline), must be at least
:data:`MIN_KEY_BYTES` long, and is held only inside a :class:`TokenKey`, whose ``repr`` redacts
it. No message, record or output of refit contains the key or anything it can be recovered
from; the audit log records where the key came from and a one-way fingerprint, so a key
rotation (which changes every token, and so breaks joins with older tokens) is visible.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NoReturn

from refit.errors import PrivacyError
from refit.privacy.config import PrivacyConfig

__all__ = ["MIN_KEY_BYTES", "TokenKey", "load_key"]

#: Shortest accepted key, in bytes: SHA-256's output size (RFC 2104 advises no shorter).
MIN_KEY_BYTES = 32

_BLOCK = 64  # SHA-256 block size (RFC 2104's B)
_FINGERPRINT_MESSAGE = b"refit.privacy key fingerprint"


class TokenKey:
    """An HMAC-SHA256 key, with its inner and outer hash states precomputed.

    Keeping the two padded-key states (RFC 2104) instead of the key makes one HMAC two hash
    updates, which is what lets a million-value column be tokenized in about a second; the
    results equal :func:`hmac.digest` with the same key (a unit test holds them to it).

    Args:
        secret: The key bytes.
        source: Where the key came from (for messages; never the key).

    Raises:
        PrivacyError: The key is shorter than :data:`MIN_KEY_BYTES`.
    """

    __slots__ = ("_inner", "_outer", "source")

    def __init__(self, secret: bytes, source: str = "the caller") -> None:
        if not isinstance(secret, bytes | bytearray):
            raise PrivacyError(f"tokenization key from {source} must be bytes")
        if len(secret) < MIN_KEY_BYTES:
            raise PrivacyError(
                f"tokenization key from {source} is too short: it must be at least "
                f"{MIN_KEY_BYTES} bytes (e.g. the output of `openssl rand -base64 32`)"
            )
        block = bytes(secret)
        if len(block) > _BLOCK:
            block = hashlib.sha256(block).digest()
        block = block.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self.source = source

    def __repr__(self) -> str:
        return f"TokenKey(source={self.source!r}, key=<redacted>)"

    def __reduce__(self) -> NoReturn:  # never pickled into a cache or a subprocess by accident
        raise TypeError("TokenKey cannot be pickled")

    def digest(self, message: bytes) -> bytes:
        """Return HMAC-SHA256(key, message), 32 bytes."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def digests(self, messages: Iterable[bytes], size: int = 32) -> bytes:
        """Return the first ``size`` bytes of each message's HMAC-SHA256, concatenated.

        Args:
            messages: The messages.
            size: Bytes kept of each 32-byte digest.

        Returns:
            ``size * len(messages)`` bytes.
        """
        inner_state, outer_state = self._inner, self._outer
        out = bytearray()
        for message in messages:
            inner = inner_state.copy()
            inner.update(message)
            outer = outer_state.copy()
            outer.update(inner.digest())
            out += outer.digest()[:size]
        return bytes(out)

    @property
    def fingerprint(self) -> str:
        """A one-way, 16-hex-digit id of the key, to tell keys apart in the audit log."""
        return self.digest(_FINGERPRINT_MESSAGE).hex()[:16]


def load_key(config: PrivacyConfig, environ: Mapping[str, str] | None = None) -> TokenKey:
    """Read the tokenization key the config points at.

    Args:
        config: The privacy config (``key_file`` if set, else ``key_env``).
        environ: Environment to read ``key_env`` from; ``os.environ`` if None.

    Returns:
        The key.

    Raises:
        PrivacyError: The variable is unset or empty, the file is missing, unreadable or empty,
            or the key is shorter than :data:`MIN_KEY_BYTES`. Messages name the variable or
            file, never the key.
    """
    hint = f"at least {MIN_KEY_BYTES} bytes, e.g. `openssl rand -base64 32`"
    if config.key_file:
        path = Path(config.key_file)
        if not path.is_file():
            raise PrivacyError(
                f"tokenization key file {config.key_file} does not exist: mount the Secret "
                f"holding the key there ({hint}) or set 'key_file' to its path"
            )
        try:
            secret = path.read_bytes()
        except OSError as exc:
            raise PrivacyError(
                f"tokenization key file {config.key_file} cannot be read: {exc.strerror}"
            ) from None
        secret = secret.removesuffix(b"\n").removesuffix(b"\r")
        if not secret:
            raise PrivacyError(f"tokenization key file {config.key_file} is empty ({hint})")
        return TokenKey(secret, source=config.key_source)
    env = os.environ if environ is None else environ
    value = env.get(config.key_env)
    if not value:
        raise PrivacyError(
            f"tokenization key is missing: set the environment variable {config.key_env} "
            f"({hint}), or 'key_file' in the privacy config to a mounted Secret file"
        )
    return TokenKey(value.encode("utf-8"), source=config.key_source)
