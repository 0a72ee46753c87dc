"""kmock's Kubernetes emulator on loopback for the tests that need a Kubernetes API: one way to
start it, and a real ``kubernetes`` client pointed at it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import kmock
from kubernetes import client as k8s_client


class EmulatorThread:
    """A kmock emulator served by kmock.Server on 127.0.0.1 in a thread with its own event loop.

    Args:
        server: The emulator to serve (a subclass may play more of the API server); a plain
            ``kmock.KubernetesEmulator`` when omitted.
    """

    def __init__(self, server: kmock.KubernetesEmulator | None = None) -> None:
        self.server = server if server is not None else kmock.KubernetesEmulator()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.server, kmock.Server(self.server) as http:
            self.url = f"http://{http.host}:{http.port}"
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(30), "kmock server did not start"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@contextmanager
def kmock_emulator(server: kmock.KubernetesEmulator | None = None) -> Iterator[EmulatorThread]:
    """Serve ``server`` (a plain emulator when omitted) for the block, and stop it on exit.

    Args:
        server: The emulator to serve.

    Yields:
        The running emulator thread; its ``url`` is the API server's address.
    """
    thread = EmulatorThread(server)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def custom_objects_api(emulator: EmulatorThread) -> k8s_client.CustomObjectsApi:
    """A real ``CustomObjectsApi`` talking to the running emulator."""
    return k8s_client.CustomObjectsApi(
        k8s_client.ApiClient(k8s_client.Configuration(host=emulator.url))
    )
