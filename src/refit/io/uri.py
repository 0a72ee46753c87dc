"""Byte-level access to local paths, ``file://`` URIs and ``gs://bucket/key`` objects.

Local writes are atomic (temporary file in the target folder, then ``os.replace``) and create
parent folders. ``gs://`` goes through the real google-cloud-storage client; when
``STORAGE_EMULATOR_HOST`` is set (fake-gcs-server in tests) the client uses anonymous
credentials and the project ``"test"``.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from refit.errors import DataError

if TYPE_CHECKING:
    from google.cloud import storage

GCS_SCHEME = "gs://"
FILE_SCHEME = "file://"


class UriNotFoundError(DataError, FileNotFoundError):
    """Nothing exists at the URI (a DataError that is also a FileNotFoundError)."""


def is_gcs(uri: str) -> bool:
    """Tell whether a URI points to Google Cloud Storage.

    Args:
        uri: Local path, ``file://`` URI or ``gs://bucket/key``.

    Returns:
        True for ``gs://`` URIs.
    """
    return uri.startswith(GCS_SCHEME)


def split_gcs(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/key`` into bucket and key.

    Args:
        uri: A ``gs://`` URI.

    Returns:
        ``(bucket, key)``; the key may be empty for the bucket root.

    Raises:
        DataError: The URI is not a ``gs://`` URI or names no bucket.
    """
    if not is_gcs(uri):
        raise DataError(f"not a gs:// URI: {uri!r}")
    bucket, _, key = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise DataError(f"gs:// URI names no bucket: {uri!r}")
    return bucket, key


def local_path(uri: str) -> Path:
    """Return the filesystem path of a local path or ``file://`` URI.

    Args:
        uri: Local path or ``file://`` URI.

    Returns:
        The path.

    Raises:
        DataError: The URI is a ``gs://`` URI.
    """
    if is_gcs(uri):
        raise DataError(f"not a local path: {uri!r}")
    if uri.startswith(FILE_SCHEME):
        rest = uri[len(FILE_SCHEME) :]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        return Path(rest)
    return Path(uri)


@functools.lru_cache(maxsize=8)
def _client_for(emulator_host: str | None) -> storage.Client:
    from google.cloud import storage

    if emulator_host:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="test", credentials=AnonymousCredentials())
    return storage.Client()


def gcs_client() -> storage.Client:
    """Return a google-cloud-storage client (cached per ``STORAGE_EMULATOR_HOST`` value).

    Returns:
        A ``storage.Client``; anonymous with project ``"test"`` when the emulator host is set.
    """
    return _client_for(os.environ.get("STORAGE_EMULATOR_HOST") or None)


def _blob(uri: str) -> storage.Blob:
    bucket, key = split_gcs(uri)
    if not key:
        raise DataError(f"gs:// URI names no object: {uri!r}")
    return gcs_client().bucket(bucket).blob(key)


def read_bytes(uri: str) -> bytes:
    """Read the whole content at a URI.

    Args:
        uri: Local path, ``file://`` URI or ``gs://bucket/key``.

    Returns:
        The bytes.

    Raises:
        UriNotFoundError: Nothing exists at the URI.
        DataError: The content cannot be read.
    """
    if is_gcs(uri):
        from google.api_core import exceptions as gexc

        try:
            return _blob(uri).download_as_bytes()
        except gexc.NotFound as exc:
            raise UriNotFoundError(f"cannot read URI {uri}: no such object") from exc
        except gexc.GoogleAPIError as exc:
            raise DataError(f"cannot read URI {uri}: {exc}") from exc
    path = local_path(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise UriNotFoundError(f"cannot read URI {uri}: no such file") from exc
    except OSError as exc:
        raise DataError(f"cannot read URI {uri}: {exc.strerror or exc}") from exc


def read_head(uri: str, size: int) -> bytes:
    """Read at most the first ``size`` bytes at a URI (a file's head, to tell what it holds).

    Returns:
        The bytes; ``b""`` for a folder, an empty object or nothing at the URI.

    Raises:
        DataError: The content cannot be read.
    """
    if is_gcs(uri):
        from google.api_core import exceptions as gexc

        try:
            return _blob(uri).download_as_bytes(start=0, end=size - 1)
        except (gexc.NotFound, gexc.RequestRangeNotSatisfiable):
            return b""
        except gexc.GoogleAPIError as exc:
            raise DataError(f"cannot read URI {uri}: {exc}") from exc
    path = local_path(uri)
    if not path.is_file():
        return b""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise DataError(f"cannot read URI {uri}: {exc.strerror or exc}") from exc


def write_bytes(uri: str, data: bytes) -> None:
    """Write bytes to a URI, replacing what was there.

    Local writes are atomic (temporary file in the same folder, then ``os.replace``) and create
    the parent folders.

    Args:
        uri: Local path, ``file://`` URI or ``gs://bucket/key``.
        data: The content.

    Raises:
        DataError: The content cannot be written.
    """
    if is_gcs(uri):
        from google.api_core import exceptions as gexc

        try:
            _blob(uri).upload_from_string(data, content_type="application/octet-stream")
        except gexc.GoogleAPIError as exc:
            raise DataError(f"cannot write URI {uri}: {exc}") from exc
        return
    path = local_path(uri)
    try:
        write_file_atomic(path, data)
    except OSError as exc:
        raise DataError(f"cannot write URI {uri}: {exc.strerror or exc}") from exc


def current_umask() -> int:
    """Return the process umask without changing it (``/proc/self/status``; else set and reset).

    Returns:
        The umask, e.g. ``0o022``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file_atomic(path: Path, data: bytes | str) -> None:
    """Write a local file atomically: a temporary file in its folder, fsync, then ``os.replace``.

    The file gets the mode an ordinary ``open(path, "w")`` would give it (``0o666`` less the
    umask: ``0o644`` by default), not ``tempfile.mkstemp``'s ``0o600``, so a store written by one
    user (a pipeline task in a container, a serving pod, a shared volume) stays readable by the
    others the umask allows. Parent folders are created.

    Args:
        path: The file.
        data: The content; ``str`` is written as UTF-8.

    Raises:
        OSError: The file cannot be written (nothing is left behind).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def exists(uri: str) -> bool:
    """Tell whether a file, folder or object exists at a URI.

    Args:
        uri: Local path, ``file://`` URI or ``gs://bucket/key``.

    Returns:
        True if a local file or folder, or a GCS object, exists there.
    """
    if is_gcs(uri):
        bucket, key = split_gcs(uri)
        if not key:
            return gcs_client().bucket(bucket).exists()
        return _blob(uri).exists()
    return local_path(uri).exists()


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI with ``/``.

    Args:
        uri: Base URI (local path, ``file://`` or ``gs://``).
        *parts: Parts to append; leading and trailing slashes are stripped from each.

    Returns:
        The joined URI.
    """
    out = uri.rstrip("/") if uri.rstrip("/") else uri
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}" if not out.endswith("/") else f"{out}{part}"
    return out


def list_prefix(uri: str) -> list[str]:
    """List the files under a folder URI, recursively, sorted.

    The URI is treated as a folder: ``gs://b/data`` lists ``gs://b/data/...`` objects, not
    ``gs://b/data2``. Returned URIs keep the input's form (local path, ``file://`` or ``gs://``).

    Args:
        uri: Folder URI.

    Returns:
        URIs of the files (objects) under it; empty if there are none.
    """
    if is_gcs(uri):
        bucket, key = split_gcs(uri)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        blobs = gcs_client().list_blobs(bucket, prefix=prefix)
        return sorted(f"{GCS_SCHEME}{bucket}/{b.name}" for b in blobs if not b.name.endswith("/"))
    root = local_path(uri)
    if not root.is_dir():
        return []
    base = uri.rstrip("/") or uri
    out = []
    for path in root.rglob("*"):
        if path.is_file():
            out.append(join(base, path.relative_to(root).as_posix()))
    return sorted(out)
