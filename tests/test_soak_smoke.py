"""A 20-second soak in CI: reloads every few seconds, a scrape a second, zero failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.stack import STACK_BINARIES, require_binaries

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_short_soak_has_no_failed_scrapes_or_reloads(tmp_path: Path) -> None:
    require_binaries(*STACK_BINARIES)
    out = tmp_path / "soak.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    res = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "20", "--targets", "50",
         "--reload-every", "3", "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(out.read_text())
    assert report["completed"] is True and report["exporter_alive"] is True
    assert report["failed_scrapes"] == 0
    assert report["failed_reloads"] == 0
    assert report["reloads"] >= 5
    samples = report["samples"]
    assert len(samples) >= 15
    assert all(s["scrape_ok"] for s in samples)
    # The exporter really served the targets: one series per check/target at least.
    assert min(s["series"] for s in samples) > 50
    assert all(s["rss_kib"] > 0 for s in samples)
    assert "rss MiB" in res.stdout and "failed 0" in res.stdout
