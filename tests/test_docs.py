"""Every metric the exporter can publish is documented, with its labels, in docs/metrics.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from exporter.collector import CORE_METRICS
from exporter.providers import PROVIDER_METRICS
from exporter.registry import all_checks, all_metric_specs

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "metrics.md").read_text()


def documented_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.splitlines():
        m = re.match(r"^\| `(deliverability_[a-z0-9_]+)` \|([^|]*)\|([^|]*)\|", line)
        if m:
            rows[m.group(1)] = m.group(3)
    return rows


def test_every_metric_is_documented_with_its_labels() -> None:
    rows = documented_rows()
    specs = [*CORE_METRICS, *PROVIDER_METRICS, *all_metric_specs(all_checks())]
    missing = [s.name for s in specs if s.name not in rows]
    assert not missing, f"undocumented metrics: {missing}"
    for spec in specs:
        for label in spec.labels:
            assert label in rows[spec.name], f"{spec.name}: label {label} not documented"


def test_documented_metrics_exist() -> None:
    names = {s.name for s in [*CORE_METRICS, *PROVIDER_METRICS, *all_metric_specs(all_checks())]}
    phantom = [n for n in documented_rows() if n not in names]
    assert not phantom, f"documented but never exported: {phantom}"


def test_example_config_is_valid() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--config.file",
         str(ROOT / "config.example.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_config_check_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("resolver: {timeout: 2x}\nsenders: [{ip: 300.0.0.1}]\nbogus: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--config.file", str(bad)],
        capture_output=True, text=True)
    assert result.returncode == 1
    for path in ("resolver.timeout", "senders[0].ip", "bogus"):
        assert f"{bad}: {path}:" in result.stderr


def test_version_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "exporter", "--version"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "deliverability-exporter" in result.stdout
