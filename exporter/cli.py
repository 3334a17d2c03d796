"""Command line: flags in the Prometheus style, logging, and the serve loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from exporter import __version__
from exporter.app import Exporter
from exporter.config import Config, ConfigError, load_config, parse_config_text
from exporter.logs import LEVELS, setup_logging
from exporter.web import make_app
from exporter.webconfig import WebConfig, load_web_config

#: Not used by blackbox_exporter (9115), dnsbl_exporter (9211) or other well-known exporters.
DEFAULT_PORT = 9723

log = logging.getLogger("exporter")


def parse_listen_address(text: str) -> tuple[str | None, int]:
    """``:9723`` (every interface), ``127.0.0.1:9723`` or ``[::1]:9723`` → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected host:port or :port, got {text!r}")
    host = host.strip("[]")
    return (host or None), int(port_text)


def parse_shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return int(index), int(count)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deliverability-exporter",
        description="Prometheus exporter for mail deliverability: blocklists, reverse DNS, "
                    "SPF, DKIM, DMARC, MX and transport security.",
        epilog="One-shot commands: 'deliverability-exporter check DOMAIN [...]' prints a "
               "report with fixes; 'deliverability-exporter explain' reads a bounce "
               "(see '... check --help' and '... explain --help').",
    )
    p.add_argument("--config.file", dest="config_file", default="config.yml",
                   help="configuration file (default: %(default)s)")
    p.add_argument("--config.check", dest="config_check", action="store_true",
                   help="validate the configuration, print every error, exit 0 or 1")
    p.add_argument("--web.listen-address", dest="listen", default=f":{DEFAULT_PORT}",
                   help="address to serve /metrics on (default: %(default)s)")
    p.add_argument("--web.config.file", dest="web_config_file", default="",
                   help="exporter-toolkit web config: TLS, client certificates, basic auth")
    p.add_argument("--log.level", dest="log_level", default="info", choices=list(LEVELS),
                   help="log level (default: %(default)s)")
    p.add_argument("--log.format", dest="log_format", default="logfmt",
                   choices=["logfmt", "json"], help="log format (default: %(default)s)")
    p.add_argument("--shard", default="0/1", type=parse_shard,
                   help="I/N: check only the targets whose hash falls in shard I of N "
                        "(0-based), for several replicas sharing the work (default: %(default)s)")
    p.add_argument("--demo", action="store_true",
                   help="run offline on bundled demo zones served by an embedded DNS responder")
    p.add_argument("--version", action="version",
                   version=f"deliverability-exporter {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The one-shot commands for people: a report now, or the reading of a bounce.
    if argv and argv[0] == "check":
        from exporter.report import check_main

        return check_main(argv[1:])
    if argv and argv[0] == "explain":
        from exporter.bounce import explain_main

        return explain_main(argv[1:])
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        host, port = parse_listen_address(args.listen)
    except ValueError as exc:
        print(f"--web.listen-address: {exc}", file=sys.stderr)
        return 2
    web_config = WebConfig()
    if args.web_config_file:
        try:
            web_config = load_web_config(args.web_config_file)
        except ConfigError as exc:
            _print_problems("web configuration", exc)
            return 1
    if args.demo:
        if args.listen == f":{DEFAULT_PORT}":
            host = "127.0.0.1"
        return asyncio.run(_serve_demo(host, port, web_config))
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        _print_problems("configuration", exc)
        return 1
    if args.config_check:
        print(f"{args.config_file}: OK ({len(config.senders)} sender(s), "
              f"{len(config.domains)} domain(s))")
        return 0
    return asyncio.run(serve(config, args.config_file, host, port, web_config, args.shard))


def _print_problems(what: str, exc: ConfigError) -> None:
    print(f"{what} is invalid ({len(exc.problems)} problem(s)):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


async def _serve_demo(host: str | None, port: int, web_config: WebConfig) -> int:
    from exporter.demo import demo_config_text, start_demo_responder

    responder = await start_demo_responder("127.0.0.1", 0)
    try:
        config = parse_config_text(demo_config_text(responder.port), "<demo>")
        log.info("demo: bundled zones served on 127.0.0.1:%d; nothing leaves this machine",
                 responder.port)
        return await serve(config, None, host, port, web_config)
    finally:
        await responder.stop()


def _ignore_from_now_on(loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> None:
    """Ignore ``sig`` for the rest of the process: once shutdown has begun, a repeated
    SIGTERM (a supervisor or a test asking twice) must not cut it short. asyncio puts
    the default action (death by the signal) back when its loop closes, so the signal
    is taken from it now, blocked meanwhile so that none lands in between."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
    try:
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})


async def serve(
    config: Config, config_path: str | None, host: str | None, port: int,
    web_config: WebConfig | None = None, shard: tuple[int, int] = (0, 1),
) -> int:
    web_config = web_config or WebConfig()
    exporter = Exporter(config, config_path, shard=shard)
    runner = web.AppRunner(make_app(exporter, web_config), access_log=None,
                           handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=web_config.ssl_context)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host or "*", port, exc.strerror or exc)
        await runner.cleanup()
        return 1
    shown = host or "localhost"
    scheme = "https" if web_config.ssl_context else "http"
    log.info("deliverability-exporter %s listening on %s://%s:%d/metrics", __version__, scheme,
             f"[{shown}]" if ":" in shown else shown, port)
    exporter.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(exporter.reload()))
    await stop.wait()
    log.info("shutting down")
    _ignore_from_now_on(loop, signal.SIGTERM)
    with contextlib.suppress(Exception):
        await exporter.stop()
    await runner.cleanup()
    return 0
