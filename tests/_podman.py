"""podman with scripts/images.sh's private settings (the same store the images were built in)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "images.sh"


def podman(*args: str) -> str:
    """Run podman with scripts/images.sh's private settings; return its stdout."""
    proc = subprocess.run(
        [str(SCRIPT), "podman", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
    return proc.stdout
