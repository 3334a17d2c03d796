"""Run the exporter exactly as a user would, and read it through HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

MetricKey = tuple[str, frozenset[tuple[str, str]]]


class ExporterError(AssertionError):
    """The exporter did not do what a user expects (carries its log)."""


class ExporterProcess:
    """``python -m exporter --config.file ...`` on a free loopback port."""

    def __init__(
        self, config_text: str, workdir: Path, extra_args: Sequence[str] = ()
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "config.yml"
        self.config_path.write_text(config_text)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = tuple(extra_args)
        self.log_path = self.workdir / "exporter.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "exporter",
            "--config.file", str(self.config_path),
            "--web.listen-address", f"127.0.0.1:{self.port}",
            "--log.level", "debug",
            *self.extra_args,
        ]  # fmt: skip

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, wait_ready: bool = True, timeout: float = 30) -> None:
        env = dict(os.environ)
        # The checkout, not some installed copy, is what is under test.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_ready:
            self.wait_for(self._ready, timeout=timeout, what="GET /-/ready to return 200")

    def _ready(self) -> bool:
        try:
            status, _, _ = self.get("/-/ready")
        except OSError:
            return False
        return status == 200

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 10) -> tuple[int, dict[str, str], str]:
        """GET a path; 4xx/5xx are returned, not raised. Connection errors raise OSError."""
        req = urllib.request.Request(self.url + path)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read().decode("utf-8", "replace")
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, body
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", "replace")
            return err.code, {k.lower(): v for k, v in err.headers.items()}, body

    def metrics_text(self) -> str:
        status, _, body = self.get("/metrics")
        if status != 200:
            raise ExporterError(f"/metrics returned {status}: {body[:500]}")
        return body

    def metrics(self) -> dict[MetricKey, float]:
        """Every sample of /metrics keyed by (sample name, labels)."""
        out: dict[MetricKey, float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
        return out

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the sample with exactly these labels, or None."""
        return self.metrics().get((name, frozenset(labels.items())))

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 20, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ExporterError(
                    f"exporter exited with {self.proc.returncode} while waiting for {what}\n"
                    f"{self.log[-8000:]}"
                )
            if predicate():
                return
            time.sleep(0.2)
        raise ExporterError(f"timed out after {timeout}s waiting for {what}\n{self.log[-8000:]}")

    def signal(self, sig: int) -> None:
        if self.proc is None:
            raise ExporterError("exporter not started")
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM and wait; kills (and raises) if it does not exit in time."""
        if self.proc is None:
            raise ExporterError("exporter not started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                self.returncode = self.proc.returncode
                raise ExporterError(
                    f"exporter ignored SIGTERM for {timeout}s\n{self.log[-4000:]}"
                ) from None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
