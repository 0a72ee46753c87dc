"""Object storage under one root: the primitives the model registry and the audit log build on.

`Storage` names what they need and nothing more: whole-object reads and atomic writes,
create-only writes, compare-and-swap on a version token, listing, and a local view of a folder.
`LocalStorage` keeps objects as files under a folder; `GcsStorage` as objects under a
``gs://bucket/prefix``. `open_storage` picks one by the URI's scheme. Names are relative,
``/``-separated paths (``versions/3/model.json``).

Version tokens are opaque: pass back what `Storage.read_versioned` returned. On GCS the token is
the object's generation; locally it is the content's sha256 (so writers that may write the same
bytes twice must make each write unique, e.g. with a transaction id). The absent object has its
own token, so a write conditional on it is a create.

GCS calls retry transient errors (429, 500, 502, 503, 504, connection resets) with exponential
back-off through ``google.api_core.retry`` (bounded by :data:`RETRY_TIMEOUT_S`). Conditional writes
are retried too; when a retried write answers 412 because its first attempt had in fact landed,
the object is read back and counted as written if it holds exactly the bytes sent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from filelock import FileLock

from refit.errors import RegistryError
from refit.io.uri import current_umask, gcs_client, is_gcs, split_gcs

if TYPE_CHECKING:  # pragma: no cover
    from google.cloud import storage

__all__ = [
    "RETRY_TIMEOUT_S",
    "TEMP_PREFIX",
    "GcsStorage",
    "LocalStorage",
    "Storage",
    "Token",
    "open_storage",
]

#: Most seconds spent retrying one GCS call on transient errors.
RETRY_TIMEOUT_S = 60.0
#: Prefix of local temporary files (never listed; a write killed before its rename leaves one).
TEMP_PREFIX = ".tmp-"

#: A version token from `Storage.read_versioned` (GCS generation or local content digest).
Token = int | str | None


@runtime_checkable
class Storage(Protocol):
    """Objects under one root, addressed by relative names."""

    def uri(self, name: str = "") -> str:
        """The local path or ``gs://`` URI of a relative name (the root for ``""``)."""
        ...

    def child(self, prefix: str) -> Storage:
        """The same storage rooted at ``prefix``."""
        ...

    def read(self, name: str) -> bytes | None:
        """The object's content, or None when it does not exist."""
        ...

    def read_versioned(self, name: str) -> tuple[bytes | None, Token]:
        """The content (None when absent) and a token for `write_if`."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Replace the object atomically (readers see the old or the new content, whole)."""
        ...

    def write_if(self, name: str, data: bytes, token: Token) -> bool:
        """Write only if the object still has ``token``; return whether it was written."""
        ...

    def create(self, name: str, data: bytes) -> bool:
        """Create the object only if it does not exist; return whether this call created it."""
        ...

    def put_file(self, name: str, path: Path) -> None:
        """Store a local file's content under ``name`` (atomically)."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Names, relative to ``prefix``, of every object under it (recursively), sorted."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object if it exists."""
        ...

    def local_dir(self, prefix: str) -> AbstractContextManager[Path]:
        """A local folder holding the objects under ``prefix`` (a temporary copy if remote)."""
        ...

    def local_path(self, name: str) -> Path | None:
        """The file behind ``name`` when the storage is local, else None."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Hold the storage's cross-process lock where it has one (re-entrant per object)."""
        ...


def open_storage(uri: str) -> Storage:
    """Return the storage for a local path, ``file://`` URI or ``gs://bucket/prefix``.

    Raises:
        RegistryError: ``uri`` is empty, not a string, or has another scheme.
    """
    if not isinstance(uri, str | os.PathLike) or not os.fspath(uri):
        raise RegistryError(f"store_uri must be a non-empty path or gs:// URI, got {uri!r}")
    text = os.fspath(uri)
    if is_gcs(text):
        return GcsStorage(text)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise RegistryError(f"store_uri {text!r}: unsupported scheme (use a local path or gs://)")
    return LocalStorage(Path(text).absolute())


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- local


class LocalStorage:
    """Files under a local folder; writes go through a temp file, fsync and a rename.

    Args:
        root: The folder (created on the first write).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._lock: FileLock | None = None

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, name: str) -> Path:
        return self.root / name if name else self.root

    def uri(self, name: str = "") -> str:  # noqa: D102
        return str(self._path(name))

    def child(self, prefix: str) -> LocalStorage:  # noqa: D102
        return LocalStorage(self._path(prefix))

    def local_path(self, name: str) -> Path:  # noqa: D102
        return self._path(name)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``{root}/.lock`` (re-entrant within this storage object)."""
        if self._lock is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.root / ".lock"))
        with self._lock:
            yield

    def read(self, name: str) -> bytes | None:  # noqa: D102
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def read_versioned(self, name: str) -> tuple[bytes | None, Token]:  # noqa: D102
        data = self.read(name)
        return data, None if data is None else _sha256_bytes(data)

    def _temp(self, path: Path, data: bytes | None = None, src: Path | None = None) -> Path:
        """Write a complete, fsynced temp file beside ``path`` and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                # mkstemp's 0o600 would hide the file from a task or pod running as another
                # user: give it the mode an ordinary open() would (0o666 less the umask).
                os.fchmod(fh.fileno(), 0o666 & ~current_umask())
                if src is not None:
                    with open(src, "rb") as inp:
                        shutil.copyfileobj(inp, fh, 1 << 20)
                else:
                    fh.write(data or b"")
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def _replace(self, name: str, data: bytes | None = None, src: Path | None = None) -> None:
        path = self._path(name)
        tmp = self._temp(path, data, src)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write(self, name: str, data: bytes) -> None:  # noqa: D102
        self._replace(name, data)

    def put_file(self, name: str, path: Path) -> None:  # noqa: D102
        self._replace(name, src=path)

    def write_if(self, name: str, data: bytes, token: Token) -> bool:  # noqa: D102
        if token is None:
            return self.create(name, data)
        with self.lock():
            if self.read_versioned(name)[1] != token:
                return False
            self._replace(name, data)
        return True

    def create(self, name: str, data: bytes) -> bool:  # noqa: D102
        path = self._path(name)
        tmp = self._temp(path, data)
        try:
            os.link(tmp, path)  # atomic, and fails when the name exists
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def list(self, prefix: str) -> list[str]:  # noqa: D102
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(base).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(TEMP_PREFIX)
        )

    def delete(self, name: str) -> None:  # noqa: D102
        self._path(name).unlink(missing_ok=True)

    @contextmanager
    def local_dir(self, prefix: str) -> Iterator[Path]:  # noqa: D102
        yield self._path(prefix)


# --------------------------------------------------------------------------- gcs


def _retry():  # returns a google.api_core.retry.Retry
    # google-cloud-storage's own predicate: 408, 429, 500, 502, 503, 504, connection errors, and
    # the media-download errors that carry those codes; bounded, exponential back-off.
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_delay(initial=0.1, maximum=5.0, multiplier=2.0).with_timeout(
        RETRY_TIMEOUT_S
    )


class GcsStorage:
    """Objects under one ``gs://bucket/prefix`` (the prefix may be empty). No I/O on creation.

    Args:
        base_uri: ``gs://bucket/prefix``.
    """

    def __init__(self, base_uri: str) -> None:
        self.base_uri = base_uri.rstrip("/")
        self.bucket_name, prefix = split_gcs(self.base_uri)
        self.prefix = prefix.strip("/")
        self.retry = _retry()

    def __repr__(self) -> str:
        return f"GcsStorage({self.base_uri!r})"

    def _key(self, name: str) -> str:
        if not name:
            return self.prefix
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str = "") -> str:  # noqa: D102
        return f"gs://{self.bucket_name}/{self._key(name)}".rstrip("/")

    def child(self, prefix: str) -> GcsStorage:  # noqa: D102
        return GcsStorage(self.uri(prefix))

    def local_path(self, name: str) -> None:  # noqa: D102
        return None

    def lock(self) -> AbstractContextManager[None]:
        """No lock on GCS: every update is a compare-and-swap on an object generation."""
        return nullcontext()

    def _blob(self, name: str) -> storage.Blob:
        return gcs_client().bucket(self.bucket_name).blob(self._key(name))

    def _fail(self, what: str, name: str, exc: Exception) -> RegistryError:
        return RegistryError(f"cannot {what} {self.uri(name)}: {exc}")

    def read_versioned(self, name: str) -> tuple[bytes | None, Token]:  # noqa: D102
        from google.api_core import exceptions as gexc

        blob = self._blob(name)
        try:
            data = blob.download_as_bytes(retry=self.retry)
        except gexc.NotFound:
            return None, 0
        except gexc.GoogleAPIError as exc:
            raise self._fail("read", name, exc) from exc
        return data, int(blob.generation or 0)

    def read(self, name: str) -> bytes | None:  # noqa: D102
        return self.read_versioned(name)[0]

    def write(self, name: str, data: bytes) -> None:  # noqa: D102
        from google.api_core import exceptions as gexc

        try:
            self._blob(name).upload_from_string(data, retry=self.retry)
        except gexc.GoogleAPIError as exc:
            raise self._fail("write", name, exc) from exc

    def write_if(self, name: str, data: bytes, token: Token) -> bool:  # noqa: D102
        from google.api_core import exceptions as gexc

        try:
            self._blob(name).upload_from_string(
                data, if_generation_match=int(token or 0), retry=self.retry
            )
        except gexc.PreconditionFailed:
            return self.read(name) == data  # a retried write whose first attempt landed
        except gexc.GoogleAPIError as exc:
            raise self._fail("write", name, exc) from exc
        return True

    def create(self, name: str, data: bytes) -> bool:  # noqa: D102
        return self.write_if(name, data, 0)

    def put_file(self, name: str, path: Path) -> None:  # noqa: D102
        from google.api_core import exceptions as gexc

        try:
            self._blob(name).upload_from_filename(str(path), retry=self.retry)
        except gexc.GoogleAPIError as exc:
            raise self._fail("upload", name, exc) from exc

    def list(self, prefix: str) -> list[str]:  # noqa: D102
        from google.api_core import exceptions as gexc

        full = self._key(prefix)
        full = full + "/" if full else ""
        try:
            blobs = gcs_client().list_blobs(self.bucket_name, prefix=full, retry=self.retry)
            return sorted(b.name[len(full) :] for b in blobs)
        except gexc.GoogleAPIError as exc:
            raise self._fail("list", prefix, exc) from exc

    def delete(self, name: str) -> None:  # noqa: D102
        from google.api_core import exceptions as gexc

        try:
            self._blob(name).delete(retry=self.retry)
        except gexc.NotFound:
            return
        except gexc.GoogleAPIError as exc:
            raise self._fail("delete", name, exc) from exc

    @contextmanager
    def local_dir(self, prefix: str) -> Iterator[Path]:  # noqa: D102
        from google.api_core import exceptions as gexc

        with tempfile.TemporaryDirectory(prefix="refit-gcs-") as tmp:
            for name in self.list(prefix):
                target = Path(tmp) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._blob(f"{prefix}/{name}").download_to_filename(
                        str(target), retry=self.retry
                    )
                except gexc.GoogleAPIError as exc:
                    raise self._fail("download", f"{prefix}/{name}", exc) from exc
            yield Path(tmp)
