"""What every check shares: its protocol, its targets, and what a run produces.

A check is a small function of DNS (or SMTP) answers. It asks, classifies and
records samples and findings; it never formats metrics, never sleeps, and
lets :class:`exporter.dns.LookupFailed` propagate when it cannot classify an
unanswered lookup. The scheduler, ``/probe`` and the tests all read the same
:class:`Result`.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol

from exporter.dns import Resolver

if TYPE_CHECKING:
    from exporter.config import Config


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric a check may emit: the contract documented in docs/metrics.md."""

    name: str
    help: str
    labels: tuple[str, ...]


class Sample(NamedTuple):
    """One series value. A named tuple: a blocklist cycle makes 200,000 (a frozen
    dataclass's ``__init__`` cost three times as much)."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (self.metric, self.labels)


class Status(StrEnum):
    """A finding's verdict, as a person reads it (report, status page)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INFO = "info"


#: Fills a Sample's three fields without its Python-level ``__new__`` (see add_pairs).
_new_sample = tuple.__new__
assert len(Sample._fields) == 3


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a person should read: what was seen and what to do about it."""

    status: Status
    title: str
    evidence: str = ""
    fix: str = ""


@functools.lru_cache(maxsize=65536)
def label_pair(name: str, value: str) -> tuple[str, str]:
    """One shared tuple per label pair: 200,000 samples need not hold 400,000 copies."""
    return (sys.intern(name), value)


@dataclass(slots=True)
class Findings:
    """What one run learned. Samples only from lookups that were answered."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    #: False when another target may report the same series (a sender host whose
    #: addresses overlap another host's): the collector then de-duplicates them.
    exclusive: bool = True

    def add(self, metric: str, value: float | bool, **labels: str) -> None:
        pairs = tuple(label_pair(k, v) for k, v in sorted(labels.items()))
        self.samples.append(Sample(metric, pairs, float(value)))

    def add_pairs(self, metric: str, value: float | bool,
                  pairs: tuple[tuple[str, str], ...]) -> None:
        """``add`` for hot paths: ``pairs`` come from ``label_pair``, sorted by label name."""
        # tuple.__new__ directly: Sample's own __new__ is a Python function.
        self.samples.append(_new_sample(Sample, (metric, pairs, float(value))))

    def error(self, message: str) -> None:
        self.errors.append(message)

    def note(
        self, status: Status, title: str, evidence: str = "", fix: str = ""
    ) -> None:
        self.findings.append(Finding(status, title, evidence, fix))


@dataclass(frozen=True, slots=True)
class Target:
    """One thing a check evaluates.

    ``key`` is the ``target`` label (an IP in compressed form, or a domain).
    ``params`` carries what the check needs from config (the HELO name, the
    selectors, ...) as a hashable tuple, so an unchanged target compares equal
    across a reload and keeps its schedule and results.
    """

    check: str
    key: str
    params: tuple[tuple[str, object], ...] = ()

    def param(self, name: str, default: object = None) -> object:
        for k, v in self.params:
            if k == name:
                return v
        return default


@dataclass(slots=True)
class CheckContext:
    resolver: Resolver
    config: Config
    log: logging.Logger
    #: Resolvers for DNSBL zones served by their own nameservers (local mirrors).
    zone_resolvers: Mapping[str, Resolver] = field(default_factory=dict)
    #: False for /probe: work everything out now rather than reuse what background
    #: runs share (a zone's health).
    reuse_shared: bool = True


@dataclass(frozen=True, slots=True)
class Result:
    check: str
    target: str
    success: bool
    duration: float
    timestamp: float
    samples: tuple[Sample, ...]
    errors: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    exclusive: bool = True


class Check(Protocol):
    """The one signature every check has."""

    name: ClassVar[str]
    metrics: ClassVar[Sequence[MetricSpec]]

    def targets(self, config: Config) -> list[Target]:
        """Every target this check evaluates under ``config``."""
        ...

    def interval(self, config: Config) -> float:
        """Seconds between runs for this check."""
        ...

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        """Evaluate one target. May raise LookupFailed; must not catch what it cannot classify."""
        ...


class BatchCheck(Check, Protocol):
    """A check that can evaluate several targets in one run (the scheduler groups them).

    At provider scale the per-run machinery (a task, a timeout, an admission
    slot, a wake-up per answer batch) cost more CPU than a blocklist run's own
    work, so such targets are run ``batch_size`` at a time.
    """

    batch_size: ClassVar[int]

    def batchable(self, target: Target) -> bool:
        """Whether this target may share a run with others."""
        ...

    async def run_batch(self, targets: Sequence[Target],
                        ctx: CheckContext) -> list[Findings | Exception]:
        """One outcome per target, in order: its findings, or what went wrong for it alone
        (``run``'s exceptions). An exception raised instead fails every target."""
        ...
