"""The receiver alert rules: promtool accepts and tests them, each is documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "prometheus" / "alerts-receivers.yml"
TESTS = ROOT / "prometheus" / "alerts-receivers.test.yml"
RUNBOOK = ROOT / "docs" / "runbook-receivers.md"
RUNBOOK_URL = ("https://github.com/deliverability-exporter/deliverability-exporter/blob/main/"
               "docs/runbook-receivers.md#")


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    return path


def test_promtool_check_rules_is_clean() -> None:
    out = subprocess.run([_promtool(), "check", "rules", str(RULES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in out.stdout


def test_promtool_unit_tests_pass() -> None:
    out = subprocess.run([_promtool(), "test", "rules", TESTS.name], cwd=TESTS.parent,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_has_severity_for_and_annotations() -> None:
    for rule in _rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], name
        assert ann["runbook_url"] == RUNBOOK_URL + name.lower(), name


def test_every_rule_is_tested_firing_and_not_firing() -> None:
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for rule in _rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']} never fires in a test"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']} never stays quiet"


def test_every_rule_has_a_runbook_section() -> None:
    headings = {line[3:].strip() for line in RUNBOOK.read_text().splitlines()
                if line.startswith("## ")}
    for rule in _rules():
        assert rule["alert"] in headings, rule["alert"]
