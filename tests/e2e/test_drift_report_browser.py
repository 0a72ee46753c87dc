"""The drift report renders in headless Chromium with no network: the DOM holds every feature,
it needs nothing a sandboxed iframe (the KFP UI's HTML viewer) forbids, and a screenshot is
saved under the test's tmp dir.

(A screenshot of the report inside a sandboxed ``srcdoc`` iframe was tried: headless Chromium
paints out-of-process iframes only some of the time, so the shot is of the page itself.)"""

import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa

from refit.drift import detect_drift, render_drift_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    assert shutil.which(CHROMIUM), (
        "chromium is missing: `./dev test` installs Debian's chromium (apt-get install chromium)"
    )
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _result():
    rng = np.random.default_rng(8)
    n = 2000
    reference = pa.table(
        {
            "income": rng.lognormal(3.9, 0.35, n),
            "age": rng.normal(41, 11, n),
            "score": rng.normal(655, 55, n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "channel": rng.choice(["web", "branch"], n, p=[0.7, 0.3]),
        }
    )
    current = pa.table(
        {
            "income": rng.lognormal(4.25, 0.35, n),
            "age": pa.array(np.where(rng.random(n) < 0.2, np.nan, rng.normal(41, 11, n))),
            "score": rng.normal(610, 55, n),
            "region": rng.choice(["north", "south", "east", "west", "moon"], n),
            "channel": rng.choice(["web", "branch"], n, p=[0.4, 0.6]),
        }
    )
    return detect_drift(reference, current)


def test_report_renders_every_feature_in_chromium(tmp_path):
    result = _result()
    report = tmp_path / "report.html"
    report.write_text(render_drift_html(result, "Drift of window 3"), encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    rows = re.findall(r'<tr class="[a-z]+" data-feature="([^"]+)"', page)
    assert sorted(rows) == sorted(result.features)
    # most drifted first: the drifted features come before the stable one
    assert rows.index("age") > max(rows.index(n) for n in ("income", "score", "channel"))
    cards = re.findall(r'<div class="card[^"]*" data-feature="([^"]+)"', page)
    assert sorted(cards) == sorted(result.features)
    assert page.count("<svg") == len(result.features)
    assert page.index('id="summary"') < page.index('id="features"')
    assert "missing share 0.0% → 19.7%" in page  # the missing check of "age"
    assert "1 new category" in page and "moon" in page
    # what a sandboxed iframe (the KFP UI's HTML viewer) needs: nothing to fetch, no script
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\b(src|href)=", page)

    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # more than a blank page
