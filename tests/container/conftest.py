"""Containers for real: refit's images built by scripts/images.sh, podman's Docker API on a socket.

The session fixture builds (or, with unchanged inputs, reuses in seconds) both images with the
same script as `make images` and ./dev test, then starts `podman system service` on a private
socket and points DOCKER_HOST at it for the tests, as a user's Docker engine would be.
"""

import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from _podman import ROOT, SCRIPT


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Build both images, serve podman's Docker-compatible API; yield its DOCKER_HOST."""
    build = subprocess.run(
        [str(SCRIPT), "build"], cwd=ROOT, capture_output=True, text=True, timeout=3600
    )
    assert build.returncode == 0, build.stderr[-4000:]
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    log = open(sock.with_name("service.log"), "w")  # closed at teardown
    service = subprocess.Popen([str(SCRIPT), "service", str(sock)], stdout=log, stderr=log)
    host = f"unix://{sock}"
    import docker

    try:
        deadline = time.monotonic() + 60
        while True:
            assert service.poll() is None, sock.with_name("service.log").read_text()
            if sock.exists():
                try:
                    docker.DockerClient(base_url=host).ping()
                    break
                except docker.errors.DockerException:
                    pass
            assert time.monotonic() < deadline, "podman system service did not answer in 60 s"
            time.sleep(0.2)
        old = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = host
        yield host
    finally:
        if "old" in locals():
            if old is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = old
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log.close()
