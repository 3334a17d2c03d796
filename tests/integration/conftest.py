"""Fixtures for the integration tests: real servers and the exporter process."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.integration.exporter_proc import ExporterProcess
from tests.integration.stack import (
    STACK_BINARIES,
    Blocklist,
    DnsStack,
    Zone,
    require_binaries,
)

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration is an integration test (``-m "not integration"``)."""
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


StackFactory = Callable[..., DnsStack]


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """``make_stack(zones=..., blocklists=..., silent_zones=...)``: a started DnsStack,
    stopped when the module's tests are done."""
    require_binaries(*STACK_BINARIES)
    stacks: list[DnsStack] = []

    def make(
        zones: Sequence[Zone] = (),
        blocklists: Sequence[Blocklist] = (),
        silent_zones: Sequence[str] = (),
        extra_trust_anchors: Sequence[str] = (),
    ) -> DnsStack:
        stack = DnsStack(
            tmp_path_factory.mktemp("stack"),
            zones=zones,
            blocklists=blocklists,
            silent_zones=silent_zones,
            extra_trust_anchors=extra_trust_anchors,
        )
        stacks.append(stack)
        stack.start()
        return stack

    yield make
    for stack in stacks:
        stack.stop()


ExporterFactory = Callable[..., ExporterProcess]


@pytest.fixture
def exporter(workdir: Path) -> Iterator[ExporterFactory]:
    """``exporter(config_text, extra_args=(), start=True, wait_ready=True)``.

    Every process is killed after the test; its log is printed so a failing
    test shows what the exporter said.
    """
    procs: list[ExporterProcess] = []

    def make(
        config_text: str,
        extra_args: Sequence[str] = (),
        *,
        start: bool = True,
        wait_ready: bool = True,
        timeout: float = 30,
    ) -> ExporterProcess:
        proc = ExporterProcess(config_text, workdir / f"exporter{len(procs)}", extra_args)
        procs.append(proc)
        if start:
            proc.start(wait_ready=wait_ready, timeout=timeout)
        return proc

    yield make
    for proc in procs:
        proc.kill()
        print(f"--- exporter log ({proc.log_path}) ---\n{proc.log[-20000:]}")
