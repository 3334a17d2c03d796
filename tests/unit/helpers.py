"""Shared helpers for unit tests: run a check on a fake resolver."""

from __future__ import annotations

import logging

from exporter.checks.base import Check, CheckContext, Result, Target
from exporter.config import Config, parse_config_text
from exporter.dns import Resolver
from exporter.scheduler import run_once


def context(resolver: Resolver, config_text: str = "", **kwargs: object) -> CheckContext:
    config = parse_config_text(config_text)
    return CheckContext(resolver=resolver, config=config, log=logging.getLogger("test"),
                        **kwargs)  # type: ignore[arg-type]


async def run(check: Check, target: Target, ctx: CheckContext) -> Result:
    return await run_once(check, target, ctx, timeout=5)


def values(result: Result, metric: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels): s.value for s in result.samples if s.metric == metric}


def value(result: Result, metric: str, **labels: str) -> float | None:
    return values(result, metric).get(frozenset(labels.items()))


def target_for(check: Check, config: Config, key: str) -> Target:
    return next(t for t in check.targets(config) if t.key == key)
