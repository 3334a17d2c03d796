"""The Grafana dashboards: importable anywhere, and every panel asks something real.

Structure only; that each panel's query returns data from a Prometheus that
scraped the real exporter is tests/integration/test_prometheus_stack.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.metric_names import DOCUMENTED_METRICS, deliverability_names

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
DS_REF = "${DS_PROMETHEUS}"


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in panels(dashboard) if p.get("type") != "row")


def datasource_refs(node: object) -> Iterator[object]:
    """Every value of a ``datasource`` key anywhere in the JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


@pytest.fixture(params=DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    path: Path = request.param
    return load(path)


def test_both_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARDS} >= {"overview.json", "domain.json"}


def test_dashboard_uids_are_unique_and_stable() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert all(isinstance(u, str) and re.fullmatch(r"[a-z0-9-]{1,40}", u) for u in uids), uids
    assert len(set(uids)) == len(uids)


def test_has_schema_version_title_and_unique_panel_ids(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] >= 36
    assert dashboard.get("title")
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert ids


def test_datasource_is_an_input(dashboard: dict[str, Any]) -> None:
    inputs = dashboard.get("__inputs", [])
    assert any(
        i.get("name") == "DS_PROMETHEUS" and i.get("type") == "datasource"
        and i.get("pluginId") == "prometheus"
        for i in inputs
    ), inputs
    # A datasource variable of the same name makes the file work when it is
    # provisioned from disk too, where Grafana does not fill in __inputs.
    variables = dashboard["templating"]["list"]
    assert any(v["name"] == "DS_PROMETHEUS" and v["type"] == "datasource" for v in variables)


def test_no_hard_coded_datasource_uid_anywhere(dashboard: dict[str, Any]) -> None:
    refs = list(datasource_refs(dashboard))
    assert refs, "panels must name their datasource"
    for ref in refs:
        if isinstance(ref, dict) and ref.get("type") == "grafana":
            continue  # Grafana's built-in annotations source, the same in every Grafana
        assert ref in (DS_REF, {"type": "prometheus", "uid": DS_REF}), ref


def test_every_panel_has_a_prometheus_query(dashboard: dict[str, Any]) -> None:
    for panel in query_panels(dashboard):
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r}: empty expr"


def test_every_metric_in_a_query_is_documented(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    exprs = [t["expr"] for p in query_panels(dashboard) for t in p["targets"]]
    exprs += [
        v["definition"] for v in dashboard["templating"]["list"] if v.get("type") == "query"
    ]
    for expr in exprs:
        names = deliverability_names(expr)
        unknown = names - DOCUMENTED_METRICS
        assert not unknown, f"undocumented metrics {sorted(unknown)} in {expr!r}"
        used |= names
    assert used, "no deliverability metric used at all"


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))


def test_domain_dashboard_has_a_domain_variable_from_a_query() -> None:
    domain = load(REPO / "grafana" / "dashboards" / "domain.json")
    variables = {v["name"]: v for v in domain["templating"]["list"]}
    assert variables["domain"]["type"] == "query"
    assert "label_values(" in variables["domain"]["definition"]
    exprs = [t["expr"] for p in query_panels(domain) for t in p["targets"]]
    assert sum("$domain" in e for e in exprs) >= 10


def test_overview_covers_what_the_issue_lists() -> None:
    overview = load(REPO / "grafana" / "dashboards" / "overview.json")
    exprs = " ".join(t["expr"] for p in query_panels(overview) for t in p["targets"])
    for metric in (
        "deliverability_dnsbl_listing_info",       # listings table with reasons
        "deliverability_ptr_present",              # per sending IP
        "deliverability_spf_valid",                # per domain
        "deliverability_dmarc_policy",
        "deliverability_spf_dns_lookups",
        "deliverability_dkim_key_bits",
        "deliverability_smtp_tls_cert_expiry_timestamp_seconds",
        "deliverability_check_success",            # failing checks
    ):
        assert metric in exprs, metric


def test_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    prov = REPO / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())
    assert ds["apiVersion"] == 1
    assert [d["type"] for d in ds["datasources"]] == ["prometheus"]
    assert ds["datasources"][0]["isDefault"] is True
    boards = yaml.safe_load((prov / "dashboards" / "dashboards.yml").read_text())
    provider = boards["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
