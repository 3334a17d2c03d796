"""The SMTP probe and SmtpCheck against in-process SMTP servers on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from exporter.checks.smtp import SmtpCheck, version_rank
from exporter.dns import Outcome
from exporter.smtp_client import SmtpProbeError, probe, starttls_offered
from tests.fakes import FakeResolver
from tests.integration.pki import TestCA
from tests.unit.helpers import context, run, target_for, value
from tests.unit.smtp_fake import FakeSmtp

MX = "mx.example.com"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Callable[..., asyncio.Future[FakeSmtp]]]:
    started: list[FakeSmtp] = []

    async def make(**kwargs: object) -> FakeSmtp:
        server = FakeSmtp(tmp=tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return await server.start()

    yield make  # type: ignore[misc]
    for s in started:
        await s.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(port: int, ca_file: Path, *domains: str, timeout: str = "2s") -> str:
    doms = "\n".join(f"  - name: {d}" for d in domains or ("example.com",))
    return (f"smtp: {{port: {port}, timeout: {timeout}, helo: probe.example.net}}\n"
            f"tls: {{ca_file: {ca_file}}}\ndomains:\n{doms}\n")


def test_starttls_is_found_in_either_position_and_any_case() -> None:
    assert starttls_offered(("mx hello", "PIPELINING", "starttls"))
    assert starttls_offered(("mx hello", "StartTLS", "8BITMIME"))
    assert not starttls_offered(("mx hello", "PIPELINING", "8BITMIME"))
    # The greeting line is not a keyword, even if it says STARTTLS.
    assert not starttls_offered(("STARTTLS",))


def test_version_rank_orders_oldest_first() -> None:
    assert version_rank("TLSv1") < version_rank("TLSv1.2") < version_rank("TLSv1.3")


async def test_probe_reads_a_multiline_banner_and_verifies_the_certificate(
    ca: TestCA, servers: Callable[..., asyncio.Future[FakeSmtp]], tmp_path: Path
) -> None:
    leaf = ca.issue(MX)
    server = await servers(banner=("mx.example.com ESMTP", "postscreen says hi", "really"),
                           leaf=leaf)
    result = await probe(MX, "127.0.0.1", server.port, helo="probe.example.net", timeout=2,
                         ca_file=str(ca.write(tmp_path / "ca.pem")))
    assert result.banner.startswith("mx.example.com ESMTP")
    assert result.starttls_offered
    assert result.tls is not None and result.tls.verified
    assert result.tls.leaf == leaf.der
    assert result.tls.version in ("TLSv1.2", "TLSv1.3")
    assert server.commands[0] == "EHLO probe.example.net"
    assert not any(c.upper().startswith(("MAIL", "RCPT", "DATA")) for c in server.commands)


async def test_probe_captures_the_certificate_of_an_untrusted_chain(
    ca: TestCA, servers: Callable[..., asyncio.Future[FakeSmtp]], tmp_path: Path
) -> None:
    other_ca = TestCA("Some Other CA")
    leaf = other_ca.issue(MX)
    server = await servers(leaf=leaf)
    result = await probe(MX, "127.0.0.1", server.port, helo="h.example", timeout=2,
                         ca_file=str(ca.write(tmp_path / "ca.pem")))
    assert result.tls is not None
    assert not result.tls.verified
    assert "certificate" in result.tls.verify_error
    assert result.tls.leaf == leaf.der
    # One verifying session, then one to look at the certificate.
    assert server.connections == 2


async def test_probe_of_a_closed_port_raises() -> None:
    with pytest.raises(SmtpProbeError, match="refused"):
        await probe(MX, "127.0.0.1", closed_port(), helo="h.example", timeout=2)


async def test_probe_times_out_on_a_silent_server(
    servers: Callable[..., asyncio.Future[FakeSmtp]],
) -> None:
    server = await servers(banner_delay=5)
    with pytest.raises(SmtpProbeError, match="timed out"):
        await probe(MX, "127.0.0.1", server.port, helo="h.example", timeout=0.3)


async def test_probe_raises_on_a_rejecting_greeting(
    servers: Callable[..., asyncio.Future[FakeSmtp]],
) -> None:
    server = await servers(banner_code=554, banner=("no thanks",))
    with pytest.raises(SmtpProbeError, match="554"):
        await probe(MX, "127.0.0.1", server.port, helo="h.example", timeout=2)


async def test_check_reports_valid_tls_with_expiry_and_version(
    ca: TestCA, servers: Callable[..., asyncio.Future[FakeSmtp]], tmp_path: Path
) -> None:
    leaf = ca.issue(MX)
    server = await servers(leaf=leaf, starttls_line="starttls")
    resolver = FakeResolver({("example.com", "MX"): f"10 {MX}", (MX, "A"): "127.0.0.1"})
    ctx = context(resolver, config(server.port, ca.write(tmp_path / "ca.pem")))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "example.com"), ctx)
    assert result.success, result.errors
    assert value(result, "deliverability_smtp_up", mx=MX) == 1
    assert value(result, "deliverability_smtp_starttls", mx=MX) == 1
    assert value(result, "deliverability_smtp_tls_cert_valid", mx=MX) == 1
    assert value(result, "deliverability_smtp_tls_cert_expiry_timestamp_seconds",
                 mx=MX) == leaf.not_after
    versions = [dict(s.labels)["version"] for s in result.samples
                if s.metric == "deliverability_smtp_tls_version_info"]
    assert len(versions) == 1 and versions[0].startswith("TLSv1.")


async def test_check_reports_wrong_name_as_invalid_but_keeps_the_expiry(
    ca: TestCA, servers: Callable[..., asyncio.Future[FakeSmtp]], tmp_path: Path
) -> None:
    leaf = ca.issue("other.example.org")
    server = await servers(leaf=leaf)
    resolver = FakeResolver({("example.com", "MX"): f"10 {MX}", (MX, "A"): "127.0.0.1"})
    ctx = context(resolver, config(server.port, ca.write(tmp_path / "ca.pem")))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "example.com"), ctx)
    assert result.success, result.errors
    assert value(result, "deliverability_smtp_starttls", mx=MX) == 1
    assert value(result, "deliverability_smtp_tls_cert_valid", mx=MX) == 0
    assert value(result, "deliverability_smtp_tls_cert_expiry_timestamp_seconds",
                 mx=MX) == leaf.not_after
    assert any("mismatch" in f.evidence.lower() or "hostname" in f.evidence.lower()
               for f in result.findings)


async def test_check_without_starttls_reports_zero_and_no_expiry(
    ca: TestCA, servers: Callable[..., asyncio.Future[FakeSmtp]], tmp_path: Path
) -> None:
    server = await servers(starttls_line=None)
    resolver = FakeResolver({("example.com", "MX"): f"10 {MX}", (MX, "A"): "127.0.0.1"})
    ctx = context(resolver, config(server.port, ca.write(tmp_path / "ca.pem")))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "example.com"), ctx)
    assert result.success
    assert value(result, "deliverability_smtp_up", mx=MX) == 1
    assert value(result, "deliverability_smtp_starttls", mx=MX) == 0
    assert value(result, "deliverability_smtp_tls_cert_valid", mx=MX) == 0
    assert value(result, "deliverability_smtp_tls_cert_expiry_timestamp_seconds", mx=MX) is None


async def test_one_refusing_address_makes_the_host_down_and_the_run_fail(
    ca: TestCA, servers: Callable[..., asyncio.Future[FakeSmtp]], tmp_path: Path
) -> None:
    # Two addresses of one MX: 127.0.0.1 answers, 127.0.0.2 refuses on the same port.
    server = await servers(leaf=ca.issue(MX))
    resolver = FakeResolver({("example.com", "MX"): f"10 {MX}",
                             (MX, "A"): ["127.0.0.1", "127.0.0.2"]})
    ctx = context(resolver, config(server.port, ca.write(tmp_path / "ca.pem")))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "example.com"), ctx)
    assert not result.success
    assert any("127.0.0.2" in e for e in result.errors)
    assert value(result, "deliverability_smtp_up", mx=MX) == 0
    # What the answering address showed is still reported.
    assert value(result, "deliverability_smtp_starttls", mx=MX) == 1


async def test_dns_timeout_on_the_mx_lookup_fails_without_samples(tmp_path: Path) -> None:
    resolver = FakeResolver({("example.com", "MX"): Outcome.TIMEOUT})
    ca_file = TestCA().write(tmp_path / "ca.pem")
    ctx = context(resolver, config(closed_port(), ca_file))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "example.com"), ctx)
    assert not result.success
    assert result.samples == ()


async def test_shared_mx_host_is_reported_once_by_the_first_domain(
    ca: TestCA, servers: Callable[..., asyncio.Future[FakeSmtp]], tmp_path: Path
) -> None:
    server = await servers(leaf=ca.issue(MX))
    resolver = FakeResolver({
        ("a.example", "MX"): f"10 {MX}",
        ("b.example", "MX"): [f"10 {MX}", "20 mx2.b.example"],
        (MX, "A"): "127.0.0.1",
        ("mx2.b.example", "A"): "127.0.0.1",
    })
    ctx = context(resolver, config(server.port, ca.write(tmp_path / "ca.pem"),
                                   "a.example", "b.example"))
    check = SmtpCheck()
    first = await run(check, target_for(check, ctx.config, "a.example"), ctx)
    second = await run(check, target_for(check, ctx.config, "b.example"), ctx)
    assert value(first, "deliverability_smtp_up", mx=MX) == 1
    assert value(second, "deliverability_smtp_up", mx=MX) is None
    assert value(second, "deliverability_smtp_up", mx="mx2.b.example") == 1


async def test_null_mx_probes_nothing(tmp_path: Path) -> None:
    resolver = FakeResolver({("example.com", "MX"): "0 "})
    ctx = context(resolver, config(closed_port(), TestCA().write(tmp_path / "ca.pem")))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "example.com"), ctx)
    assert result.success and result.samples == ()
    assert not any(q[1] in ("A", "AAAA") for q in resolver.asked)


def test_targets_skip_domains_with_smtp_false(tmp_path: Path) -> None:
    ctx = context(FakeResolver(), "domains:\n  - name: a.example\n  - {name: b.example, "
                  "smtp: false}\n")
    assert [t.key for t in SmtpCheck().targets(ctx.config)] == ["a.example"]


async def test_unanswered_mx_of_an_earlier_domain_fails_rather_than_risk_duplicates(
    tmp_path: Path,
) -> None:
    resolver = FakeResolver({("a.example", "MX"): Outcome.SERVFAIL,
                             ("b.example", "MX"): f"10 {MX}", (MX, "A"): "127.0.0.1"})
    ctx = context(resolver, config(closed_port(), TestCA().write(tmp_path / "ca.pem"),
                                   "a.example", "b.example"))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "b.example"), ctx)
    assert not result.success and result.samples == ()


async def test_mx_host_without_addresses_is_down_but_not_a_failed_run(tmp_path: Path) -> None:
    resolver = FakeResolver({("example.com", "MX"): f"10 {MX}", (MX, "TXT"): "exists"})
    ctx = context(resolver, config(closed_port(), TestCA().write(tmp_path / "ca.pem")))
    check = SmtpCheck()
    result = await run(check, target_for(check, ctx.config, "example.com"), ctx)
    assert result.success
    assert value(result, "deliverability_smtp_up", mx=MX) == 0
    assert value(result, "deliverability_smtp_starttls", mx=MX) is None
