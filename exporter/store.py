"""The latest result per (check, target): what /metrics, the status page and reports read.

A failed run never erases what an earlier run learned: its samples (from the
lookups that *were* answered) are laid over the last good ones, the failure
is recorded, and the last-success timestamp stays where it was. Only a
reload that drops a target drops its results.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.checks.base import Finding, Result, Sample

Key = tuple[str, str]  # (check, target)


@dataclass(slots=True)
class Entry:
    check: str
    target: str
    success: bool
    duration: float
    timestamp: float
    last_success: float | None
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], Sample]
    errors: tuple[str, ...]
    findings: tuple[Finding, ...]
    runs: int = 1
    exclusive: bool = True
    #: The exposition text of ``samples`` by metric, filled in by the collector when first
    #: scraped; a new run replaces the entry, and so the cache.
    rendered: dict[str, str] | None = None


@dataclass(slots=True)
class Store:
    entries: dict[Key, Entry] = field(default_factory=dict)
    #: Bumped on every change, so readers can cache what they derive from the store.
    version: int = 0

    def update(self, result: Result) -> Entry:
        key = (result.check, result.target)
        old = self.entries.get(key)
        new_samples = {(s.metric, s.labels): s for s in result.samples}  # Sample.key, inline
        if result.success or old is None:
            samples = new_samples
            findings = result.findings
        else:
            samples = dict(old.samples)
            samples.update(new_samples)
            # Keep the last complete picture for people too, plus what went wrong now.
            findings = old.findings if not result.findings else result.findings
        last_success = result.timestamp if result.success else (old.last_success if old else None)
        entry = Entry(
            check=result.check,
            target=result.target,
            success=result.success,
            duration=result.duration,
            timestamp=result.timestamp,
            last_success=last_success,
            samples=samples,
            errors=result.errors,
            findings=findings,
            runs=(old.runs + 1) if old else 1,
            exclusive=result.exclusive and (old.exclusive if old and not result.success
                                            else True),
        )
        self.entries[key] = entry
        self.version += 1
        return entry

    def retain(self, keys: Iterable[Key]) -> None:
        """Forget every (check, target) that is not in ``keys`` (after a reload)."""
        keep = set(keys)
        for key in [k for k in self.entries if k not in keep]:
            del self.entries[key]
        self.version += 1

    def snapshot(self) -> list[Entry]:
        return list(self.entries.values())

    def get(self, check: str, target: str) -> Entry | None:
        return self.entries.get((check, target))
