"""The HTTP face: /metrics, /-/healthy, /-/ready, /-/reload and the landing page."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from exporter.app import Exporter
from exporter.probe import (
    ProbeError,
    RateLimiter,
    is_allowed,
    normalize_target,
    probe_timeout,
    render_debug,
    render_metrics,
    run_probe,
)
from exporter.status_page import status_page
from exporter.webconfig import WebConfig, middlewares

log = logging.getLogger("exporter.web")

EXPORTER_KEY: web.AppKey[Exporter] = web.AppKey("exporter", Exporter)
LIMITER_KEY: web.AppKey[RateLimiter] = web.AppKey("limiter", RateLimiter)


def _exporter(request: web.Request) -> Exporter:
    return request.app[EXPORTER_KEY]


async def metrics(request: web.Request) -> web.Response:
    body = _exporter(request).render_metrics()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    scheduler = _exporter(request).scheduler
    if scheduler.ready():
        return web.Response(text="Ready.\n")
    pending = scheduler.pending_first_runs()
    return web.Response(status=503, text=f"Not ready: {pending} first run(s) pending.\n")


async def reload(request: web.Request) -> web.Response:
    ok, message = await _exporter(request).reload()
    return web.Response(status=200 if ok else 500, text=message + "\n")


async def probe(request: web.Request) -> web.Response:
    exporter = _exporter(request)
    config = exporter.config
    limiter = request.app[LIMITER_KEY]
    limiter.rate, limiter.burst = config.probe.rate, config.probe.burst
    client = request.remote or "unknown"
    if not limiter.allow(client):
        return web.Response(status=429, text="Too many probes from this client\n",
                            headers={"Retry-After": "1"})
    module_name = request.query.get("module", "")
    module = next((m for m in config.modules if m.name == module_name), None)
    if module is None:
        known = ", ".join(m.name for m in config.modules) or "none configured"
        return web.Response(status=400, text=f"unknown module {module_name!r} ({known})\n")
    try:
        target = normalize_target(request.query.get("target", ""))
        if not is_allowed(config, target):
            raise ProbeError(403, f"target {target} is not configured and not in probe.allow")
        timeout = probe_timeout(module, request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        outcome = await run_probe(exporter.checks, exporter.scheduler.context, module, target,
                                  timeout)
    except ProbeError as exc:
        return web.Response(status=exc.status, text=f"{exc}\n")
    if request.query.get("debug", "").lower() == "true":
        return web.Response(text=render_debug(outcome, exporter.checks, target, module.name))
    return web.Response(body=render_metrics(outcome, exporter.checks),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(exporter: Exporter, web_config: WebConfig | None = None) -> web.Application:
    app = web.Application(middlewares=middlewares(web_config or WebConfig()))
    app[EXPORTER_KEY] = exporter
    app[LIMITER_KEY] = RateLimiter(exporter.config.probe.rate, exporter.config.probe.burst)
    app.router.add_get("/", status_page)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/probe", probe)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    return app
