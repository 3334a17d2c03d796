"""The Kubernetes manifests in deploy/kubernetes/ hang together.

No cluster here: these tests parse every manifest and check what a typo would
break silently: names and kinds, the exporter's flags, probe paths, port
names and numbers across StatefulSet, Service, ServiceMonitor and the scrape
annotations, the shard count against the replica count, and that the
ConfigMap's exporter config and unbound config are themselves valid.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import DEFAULT_PORT, build_parser, parse_listen_address
from exporter.config import parse_config_text

DIR = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
BASE, SINGLE = DIR / "base", DIR / "single"
#: The sharded layout (kubectl apply -k deploy/kubernetes): the shared base and the StatefulSet.
MANIFESTS = sorted([*(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"),
                    DIR / "statefulset.yaml"])


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in MANIFESTS:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _one(kind: str) -> dict[str, Any]:
    found = [d for d in _docs() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(name: str) -> dict[str, Any]:
    spec = _one("StatefulSet")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def _args(container: dict[str, Any]) -> dict[str, str]:
    out = {}
    for arg in container.get("args", []):
        key, _, value = arg.partition("=")
        out[key] = value
    return out


def _port(container: dict[str, Any], name: str) -> int:
    ports = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    assert ports, f"container {container['name']} has no port named {name}"
    return int(ports[0])


def test_there_are_manifests_and_kustomize_lists_every_one() -> None:
    assert MANIFESTS
    root, base, single = (yaml.safe_load((d / "kustomization.yaml").read_text())
                          for d in (DIR, BASE, SINGLE))
    assert {root["kind"], base["kind"], single["kind"]} == {"Kustomization"}
    assert root["resources"] == ["base", "statefulset.yaml"]
    assert single["resources"] == ["../base", "deployment.yaml"]
    assert sorted(base["resources"]) == sorted(p.name for p in MANIFESTS if p.parent == BASE)
    assert single["images"] == root["images"]
    assert sorted(p.name for p in DIR.glob("*.yaml")) == ["kustomization.yaml",
                                                          "statefulset.yaml"]


def test_every_document_has_api_version_kind_and_name() -> None:
    for doc in _docs():
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], doc
        assert isinstance(doc.get("kind"), str) and doc["kind"], doc
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), doc


def test_expected_kinds_are_present() -> None:
    kinds = sorted(d["kind"] for d in _docs())
    assert kinds == ["ConfigMap", "Service", "ServiceMonitor", "StatefulSet"]


def test_exporter_args_parse_and_name_the_mounted_config_file() -> None:
    exporter = _container("exporter")
    args = exporter["args"]
    # The real argument parser accepts them (with the shard variable filled in).
    parsed = build_parser().parse_args([a.replace("$(POD_INDEX)", "0") for a in args])
    config_file = Path(parsed.config_file)
    mounts = {Path(m["mountPath"]): m["name"] for m in exporter["volumeMounts"]}
    assert config_file.parent in mounts, "--config.file is not under a volume mount"
    volumes = {v["name"]: v for v in _one("StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    source = volumes[mounts[config_file.parent]]["configMap"]["name"]
    config_map = _one("ConfigMap")
    assert config_map["metadata"]["name"] == source
    assert config_file.name in config_map["data"]


def test_configmap_exporter_config_is_valid_and_points_at_the_sidecar() -> None:
    data = _one("ConfigMap")["data"]
    config = parse_config_text(data["config.yml"], "configmap config.yml")
    assert config.resolver.nameservers == ("127.0.0.1",)
    unbound = _container("unbound")
    assert config.resolver.port == _port(unbound, "dns-udp") == _port(unbound, "dns-tcp")
    assert re.search(rf"^\s*port:\s*{config.resolver.port}\s*$", data["unbound.conf"], re.M)
    assert re.search(r"^\s*interface:\s*127\.0\.0\.1\s*$", data["unbound.conf"], re.M)
    # unbound must be told its config where the ConfigMap is mounted.
    conf_path = Path(unbound["command"][unbound["command"].index("-c") + 1])
    mounts = {Path(m["mountPath"]) for m in unbound["volumeMounts"]}
    assert conf_path.parent in mounts and conf_path.name in data


def test_unbound_sidecar_config_passes_unbound_checkconf(tmp_path: Path) -> None:
    checkconf = shutil.which("unbound-checkconf") or (
        "/usr/sbin/unbound-checkconf" if Path("/usr/sbin/unbound-checkconf").exists() else None)
    if checkconf is None:
        pytest.skip("unbound-checkconf not installed (Debian package unbound)")
    text = _one("ConfigMap")["data"]["unbound.conf"]
    # The image's root anchor and directory do not exist here: point them at temp files.
    anchor = tmp_path / "root.key"
    anchor.write_text(". IN DS 20326 8 2 "
                      "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n")
    text = re.sub(r'trust-anchor-file: "[^"]+"', f'trust-anchor-file: "{anchor}"', text)
    text = re.sub(r'directory: "[^"]+"', f'directory: "{tmp_path}"', text)
    conf = tmp_path / "unbound.conf"
    conf.write_text(text)
    res = subprocess.run([checkconf, str(conf)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


def test_probes_hit_healthy_and_ready_on_the_http_port() -> None:
    exporter = _container("exporter")
    assert exporter["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert exporter["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert exporter[probe]["httpGet"]["port"] == "http"


def test_ports_agree_across_listen_address_container_service_monitor_and_annotations() -> None:
    exporter = _container("exporter")
    listen = _args(exporter).get("--web.listen-address", f":{DEFAULT_PORT}")
    _, port = parse_listen_address(listen)
    assert _port(exporter, "http") == port
    service = _one("Service")
    sport = next(p for p in service["spec"]["ports"] if p["name"] == "http")
    assert sport["targetPort"] in ("http", port)
    annotations = _one("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port
    assert annotations["prometheus.io/path"] == "/metrics"
    endpoints = _one("ServiceMonitor")["spec"]["endpoints"]
    assert [e["port"] for e in endpoints] == ["http"]
    assert all(e.get("path", "/metrics") == "/metrics" for e in endpoints)


def test_selectors_match_the_labels_they_select() -> None:
    sts = _one("StatefulSet")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = _one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = _one("ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    # The StatefulSet's governing Service is the headless one.
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"


def test_shard_count_equals_replicas_and_index_comes_from_the_pod_ordinal() -> None:
    sts = _one("StatefulSet")
    exporter = _container("exporter")
    shard = _args(exporter)["--shard"]
    m = re.fullmatch(r"\$\((\w+)\)/(\d+)", shard)
    assert m, f"--shard={shard} is not $(VAR)/N"
    assert int(m.group(2)) == sts["spec"]["replicas"]
    env = {e["name"]: e for e in exporter["env"]}
    field = env[m.group(1)]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_containers_run_unprivileged() -> None:
    spec = _one("StatefulSet")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]


def test_single_replica_deployment_is_the_statefulset_pod_without_sharding() -> None:
    deployment = yaml.safe_load((SINGLE / "deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    assert deployment["metadata"] == _one("StatefulSet")["metadata"]
    assert deployment["spec"]["replicas"] == 1
    # Two at once during a rollout would both check every target (the quota twice).
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    sts_pod = _one("StatefulSet")["spec"]["template"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"] == _one("StatefulSet")["spec"]["selector"]
    assert pod["metadata"] == sts_pod["metadata"]
    assert "--shard" not in _args(pod["spec"]["containers"][0])
    # Everything else is the StatefulSet's pod: the two cannot drift apart.
    expected = yaml.safe_load(yaml.safe_dump(sts_pod["spec"]))
    del expected["topologySpreadConstraints"]  # one replica: nothing to spread
    exporter = next(c for c in expected["containers"] if c["name"] == "exporter")
    exporter["args"] = [a for a in exporter["args"] if not a.startswith("--shard=")]
    exporter["env"] = [e for e in exporter["env"] if e["name"] != "POD_INDEX"]  # for --shard
    if not exporter["env"]:
        del exporter["env"]
    assert pod["spec"] == expected


@pytest.mark.parametrize(("layout", "workload"), [(DIR, "StatefulSet"), (SINGLE, "Deployment")])
def test_kustomize_builds_each_layout(layout: Path, workload: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the kustomizations' structure is checked above")
    res = subprocess.run([kubectl, "kustomize", str(layout)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    built = list(yaml.safe_load_all(res.stdout))
    assert sorted(d["kind"] for d in built) == sorted(
        ["ConfigMap", "Service", "ServiceMonitor", workload])
    pod = next(d for d in built if d["kind"] == workload)["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["containers"]} == {
        f"{i['newName']}:{i['newTag']}"
        for i in yaml.safe_load((DIR / "kustomization.yaml").read_text())["images"]}
