"""Small Google Cloud Storage helper for the registry and the audit log.

Every call retries transient errors (429, 500, 502, 503, 504, connection resets) with
exponential back-off through ``google.api_core.retry`` (bounded by :data:`RETRY_TIMEOUT_S`).
Conditional writes (``if_generation_match``) are idempotent, so they are retried too; when a
retried write answers 412 because its first attempt had in fact landed, the helper reads the
object back and counts it as a success if it holds exactly the bytes written (callers make each
write unique, e.g. with a transaction id).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from refit.errors import RegistryError
from refit.io.uri import gcs_client, split_gcs

if TYPE_CHECKING:  # pragma: no cover
    from google.cloud import storage

#: Most seconds spent retrying one call on transient errors.
RETRY_TIMEOUT_S = 60.0


def _retry():  # noqa: ANN202 (google.api_core.retry.Retry)
    # google-cloud-storage's own predicate: 408, 429, 500, 502, 503, 504, connection errors, and
    # the media-download errors that carry those codes; bounded, exponential back-off.
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_delay(initial=0.1, maximum=5.0, multiplier=2.0).with_timeout(
        RETRY_TIMEOUT_S
    )


class Gcs:
    """Objects under one ``gs://bucket/prefix``, addressed by names relative to it.

    Args:
        base_uri: ``gs://bucket/prefix`` (the prefix may be empty).
    """

    def __init__(self, base_uri: str) -> None:
        self.base_uri = base_uri.rstrip("/")
        self.bucket_name, prefix = split_gcs(self.base_uri)
        self.prefix = prefix.strip("/")
        self.retry = _retry()

    def key(self, name: str) -> str:
        """Full object key of a relative name."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str) -> str:
        """``gs://`` URI of a relative name."""
        return f"gs://{self.bucket_name}/{self.key(name)}"

    def _bucket(self) -> storage.Bucket:
        return gcs_client().bucket(self.bucket_name)

    def _blob(self, name: str) -> storage.Blob:
        return self._bucket().blob(self.key(name))

    def _fail(self, what: str, name: str, exc: Exception) -> RegistryError:
        return RegistryError(f"cannot {what} {self.uri(name)}: {exc}")

    def list(self, rel_prefix: str) -> list[str]:
        """Names (relative to the base) of every object under ``rel_prefix``."""
        from google.api_core import exceptions as gexc

        full = self.key(rel_prefix) if rel_prefix else (self.prefix + "/" if self.prefix else "")
        if rel_prefix and not full.endswith("/"):
            full += "/"
        base = self.prefix + "/" if self.prefix else ""
        try:
            blobs = gcs_client().list_blobs(self.bucket_name, prefix=full, retry=self.retry)
            names = [b.name[len(base) :] for b in blobs]
        except gexc.GoogleAPIError as exc:
            raise self._fail("list", rel_prefix, exc) from exc
        rest = rel_prefix.rstrip("/") + "/" if rel_prefix else ""
        return sorted(n[len(rest) :] for n in names if n.startswith(rest))

    def read_with_generation(self, name: str) -> tuple[bytes | None, int]:
        """Return (content, generation), or (None, 0) when the object does not exist."""
        from google.api_core import exceptions as gexc

        blob = self._blob(name)
        try:
            data = blob.download_as_bytes(retry=self.retry)
        except gexc.NotFound:
            return None, 0
        except gexc.GoogleAPIError as exc:
            raise self._fail("read", name, exc) from exc
        return data, int(blob.generation or 0)

    def read(self, name: str) -> bytes | None:
        """Return the content, or None when the object does not exist."""
        return self.read_with_generation(name)[0]

    def write(self, name: str, data: bytes) -> None:
        """Write unconditionally."""
        from google.api_core import exceptions as gexc

        try:
            self._blob(name).upload_from_string(data, retry=self.retry)
        except gexc.GoogleAPIError as exc:
            raise self._fail("write", name, exc) from exc

    def write_if_generation(self, name: str, data: bytes, generation: int) -> bool:
        """Write only if the object's generation is still ``generation`` (0: absent).

        Returns:
            True when written, False when another writer got there first.
        """
        from google.api_core import exceptions as gexc

        try:
            self._blob(name).upload_from_string(
                data, if_generation_match=generation, retry=self.retry
            )
        except gexc.PreconditionFailed:
            return self.read(name) == data  # a retried write whose first attempt landed
        except gexc.GoogleAPIError as exc:
            raise self._fail("write", name, exc) from exc
        return True

    def create(self, name: str, data: bytes) -> bool:
        """Create the object only if it does not exist; return whether this call created it."""
        return self.write_if_generation(name, data, 0)

    def upload_file(self, name: str, path: Path) -> None:
        """Upload a local file (callers own the name, e.g. through a create-only claim)."""
        from google.api_core import exceptions as gexc

        try:
            self._blob(name).upload_from_filename(str(path), retry=self.retry)
        except gexc.GoogleAPIError as exc:
            raise self._fail("upload", name, exc) from exc

    def download_file(self, name: str, path: Path) -> None:
        """Download an object to a local file."""
        from google.api_core import exceptions as gexc

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._blob(name).download_to_filename(str(path), retry=self.retry)
        except gexc.NotFound as exc:
            raise RegistryError(f"{self.uri(name)} does not exist") from exc
        except gexc.GoogleAPIError as exc:
            raise self._fail("download", name, exc) from exc
