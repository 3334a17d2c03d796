"""The bundled alert rules: promtool accepts and tests them, and each is complete.

``promtool`` comes from Debian's ``prometheus`` package. The rules' behaviour
(firing and not firing, rendered annotations) is pinned down in
``prometheus/alerts.test.yml``; this module runs it and checks what promtool
does not: every rule carries a severity, a ``for:``, the three annotations, a
runbook link whose anchor exists, only documented metric names, and a firing
and a non-firing test case.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.metric_names import DOCUMENTED_METRICS, deliverability_names

REPO = Path(__file__).resolve().parents[1]
ALERTS = REPO / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "prometheus" / "alerts.test.yml"
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_URL = (
    "https://github.com/deliverability-exporter/deliverability-exporter/blob/main/docs/runbook.md#"
)
SEVERITIES = {"critical", "warning"}


def _promtool() -> str:
    """promtool's path; a skip where it is missing, a failure in CI."""
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool not installed (Debian package: prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = m.group(1).strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_promtool_check_rules_is_clean() -> None:
    proc = subprocess.run(
        [_promtool(), "check", "rules", str(ALERTS)],
        capture_output=True, text=True, timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "SUCCESS" in output
    assert "WARNING" not in output.upper(), output
    assert f"{len(_rules())} rules found" in output


def test_promtool_rule_unit_tests_pass() -> None:
    proc = subprocess.run(
        [_promtool(), "test", "rules", str(ALERT_TESTS)],
        capture_output=True, text=True, timeout=120, cwd=ALERT_TESTS.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_rule_is_an_alert_with_severity_for_and_annotations() -> None:
    rules = _rules()
    assert len(rules) >= 20
    for rule in rules:
        name = rule.get("alert")
        assert name and name.startswith("Deliverability"), rule
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        assert re.fullmatch(r"\d+[smhd]", str(rule.get("for", ""))), f"{name}: for: missing"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: annotation {key} missing"


def test_every_runbook_link_points_at_an_existing_section() -> None:
    anchors = _github_anchors(RUNBOOK.read_text())
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_URL), url
        anchor = url.removeprefix(RUNBOOK_URL)
        assert anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"docs/runbook.md has no section #{anchor}"


def test_the_runbook_anchor_helper_sees_real_headings() -> None:
    # Guards the test above against an anchor function that accepts anything.
    anchors = _github_anchors("## DeliverabilityIPListed\ntext\n### How to fix it\n")
    assert anchors == {"deliverabilityiplisted", "how-to-fix-it"}


def test_rules_use_only_documented_metric_names() -> None:
    for rule in _rules():
        text = rule["expr"] + "".join(rule["annotations"].values())
        unknown = deliverability_names(text) - DOCUMENTED_METRICS
        assert not unknown, f"{rule['alert']}: undocumented metrics {sorted(unknown)}"


def test_every_rule_has_a_firing_and_a_non_firing_test_case() -> None:
    doc = yaml.safe_load(ALERT_TESTS.read_text())
    fired: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            alerts = check.get("exp_alerts") or []
            if not alerts:
                silent.add(check["alertname"])
            for alert in alerts:
                fired.add((check["alertname"], alert["exp_labels"]["severity"]))
    for rule in _rules():
        key = (rule["alert"], rule["labels"]["severity"])
        assert key in fired, f"no test case where {key} fires"
        assert rule["alert"] in silent, f"no test case where {rule['alert']} stays silent"
