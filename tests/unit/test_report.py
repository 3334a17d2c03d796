"""The one-shot report: groups, honest failures, exit codes, JSON schema, colour."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from exporter import report as report_mod
from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.dnsbl import DnsblCheck
from exporter.checks.ptr import PtrCheck
from exporter.config import Config, parse_config_text
from exporter.dns import Outcome
from exporter.report import (
    build_report,
    check_main,
    config_from_args,
    parse_resolver,
    render_json,
    render_text,
    run_checks,
    use_color,
)
from tests.fakes import FakeResolver

CONFIG = """
dnsbl:
  zones: [bl.example]
senders:
  - ip: 192.0.2.10
    helo: mail.example.com
domains:
  - name: example.com
"""


class StaticCheck:
    """A check that asks one question and reports a fixed verdict (report machinery only)."""

    name: ClassVar[str] = "spf"
    metrics: ClassVar[Sequence[MetricSpec]] = ()

    def __init__(self, name: str, status: Status) -> None:
        self.name = name  # type: ignore[misc]
        self.status = status

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains]

    def interval(self, config: Config) -> float:
        return 60.0

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        answer = (await ctx.resolver.resolve(f"{self.name}.{target.key}", "TXT")).require()
        f.note(self.status, f"{self.name} says {self.status.value}",
               evidence=" ".join(answer.records), fix=f"fix {self.name}")
        return f


def resolver(**failures: Outcome) -> FakeResolver:
    r = FakeResolver()
    for name in ("spf", "dkim", "dmarc", "mx"):
        r.set(f"{name}.example.com", "TXT", f"record-of-{name}")
    for name, outcome in failures.items():
        r.set(f"{name}.example.com", "TXT", outcome)
    return r


async def make_report(checks: list[Any], r: FakeResolver, text: str = CONFIG) -> Any:
    config = parse_config_text(text)
    store = await run_checks(config, checks=checks, resolver=r)
    return build_report(store, config)


async def test_everything_passing_exits_0() -> None:
    rep = await make_report([StaticCheck("spf", Status.PASS), StaticCheck("dmarc", Status.PASS)],
                            resolver())
    assert rep.exit_code == 0
    text = render_text(rep)
    assert "== SPF" in text and "== DMARC" in text
    assert "evidence: record-of-spf" in text


async def test_a_warning_exits_1_and_a_failure_exits_2() -> None:
    warn = await make_report([StaticCheck("spf", Status.PASS), StaticCheck("dkim", Status.WARN)],
                             resolver())
    assert warn.exit_code == 1
    fail = await make_report([StaticCheck("dkim", Status.WARN), StaticCheck("mx", Status.FAIL)],
                             resolver())
    assert fail.exit_code == 2
    assert fail.status == "fail"


async def test_a_timeout_is_could_not_check_never_a_pass() -> None:
    rep = await make_report([StaticCheck("spf", Status.PASS)], resolver(spf=Outcome.TIMEOUT))
    assert rep.exit_code == 2
    [group] = [g for g in rep.groups if g.name == "SPF"]
    assert [i.status for i in group.items] == ["error"]
    assert "could not check" in group.items[0].title
    assert "timeout" in group.items[0].title
    text = render_text(rep)
    spf_section = text.split("== SPF")[1].split("\n== ")[0]
    assert "PASS" not in spf_section and "ERROR" in spf_section
    assert "ERROR" in text


async def test_groups_come_in_working_order() -> None:
    checks = [StaticCheck(n, Status.PASS) for n in ("mx", "dmarc", "dkim", "spf")]
    rep = await make_report(checks, resolver())
    names = [g.name for g in rep.groups]
    assert names[:4] == ["SPF", "DKIM", "DMARC", "MX"]
    assert names[-1] == "Provider requirements"


async def test_real_checks_show_the_listing_with_its_delisting_page_and_the_missing_ptr() -> None:
    r = FakeResolver()
    r.set("2.0.0.127.bl.example", "A", "127.0.0.2")
    r.set("10.2.0.192.bl.example", "A", "127.0.0.2")
    r.set("10.2.0.192.bl.example", "TXT", "listed for spam")
    r.set("mail.example.com", "A", "192.0.2.10")
    # 10.2.0.192.in-addr.arpa has no PTR (NXDOMAIN).
    text = CONFIG.replace("zones: [bl.example]", "zones: [zen.spamhaus.org]")
    r2 = FakeResolver()
    for (name, rdtype), entry in r.data.items():
        r2.set(name.replace("bl.example", "zen.spamhaus.org"), rdtype, entry)
    rep = await make_report([DnsblCheck(), PtrCheck()], r2, text)
    assert rep.exit_code == 2
    blocklists = next(g for g in rep.groups if g.name == "Blocklists")
    listed = [i for i in blocklists.items if "is listed on zen.spamhaus.org" in i.title]
    assert listed and listed[0].status == "fail"
    assert "https://check.spamhaus.org/" in listed[0].fix
    assert "listed for spam" in listed[0].evidence
    ptr = next(g for g in rep.groups if g.name == "PTR and HELO")
    assert ptr.status == "fail"
    assert any("has no PTR record" in i.title for i in ptr.items)


async def test_json_has_the_documented_schema() -> None:
    rep = await make_report([StaticCheck("spf", Status.FAIL)], resolver())
    doc = json.loads(render_json(rep))
    assert doc["schema_version"] == 1
    assert set(doc) >= {"status", "exit_code", "domains", "senders", "counts", "groups",
                        "runs", "providers"}
    assert doc["status"] == "fail" and doc["exit_code"] == 2
    item = doc["groups"][0]["items"][0]
    assert set(item) == {"check", "target", "status", "title", "evidence", "fix"}
    assert doc["runs"][0] == {"check": "spf", "target": "example.com", "success": True,
                              "duration_seconds": doc["runs"][0]["duration_seconds"],
                              "errors": []}
    prov = doc["providers"][0]
    assert set(prov) == {"domain", "provider", "name", "compliant", "requirements",
                         "not_visible", "notes"}
    # Nothing but SPF ran: every other requirement is unknown (null), never guessed.
    assert prov["compliant"] in (None, False)
    dmarc = next(r for r in prov["requirements"] if r["name"] == "dmarc_present")
    assert dmarc["met"] is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_without_no_color() -> None:
    assert use_color(io.StringIO(), False, {}) is False
    assert use_color(_Tty(), False, {}) is True
    assert use_color(_Tty(), False, {"NO_COLOR": "1"}) is False
    assert use_color(_Tty(), True, {}) is False


async def test_plain_text_has_no_escape_codes_and_colour_has_them() -> None:
    rep = await make_report([StaticCheck("spf", Status.FAIL)], resolver())
    assert "\x1b[" not in render_text(rep, color=False)
    assert "\x1b[31m" in render_text(rep, color=True)


async def test_progress_reports_every_pair() -> None:
    seen: list[tuple[int, int]] = []
    config = parse_config_text(CONFIG)
    await run_checks(config, checks=[StaticCheck("spf", Status.PASS),
                                     StaticCheck("dkim", Status.PASS)],
                     resolver=resolver(), progress=lambda d, t, _l: seen.append((d, t)))
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)


def test_flags_build_the_same_config_a_file_would() -> None:
    args = report_mod.build_parser().parse_args(
        ["example.com", "--ip", "192.0.2.10", "--helo", "mail.example.com",
         "--dkim-selector", "s1", "--sender", "mail.example.net", "--resolver", "127.0.0.1:5353",
         "--dnsbl-zone", "bl.example", "--no-smtp"])
    config = config_from_args(args)
    assert config.resolver.nameservers == ("127.0.0.1",) and config.resolver.port == 5353
    assert config.senders[0].ip == "192.0.2.10" and config.senders[0].helo == "mail.example.com"
    domain = config.domains[0]
    assert domain.name == "example.com" and domain.dkim_selectors == ("s1",)
    assert domain.senders == ("192.0.2.10", "mail.example.net")
    assert [z.zone for z in config.dnsbl.zones] == ["bl.example"]
    assert domain.smtp is False
    assert config_from_args(report_mod.build_parser().parse_args(["example.com"])).domains[0].smtp


def test_resolver_flag_forms() -> None:
    assert parse_resolver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_resolver("[::1]:5300") == ("::1", 5300)
    with pytest.raises(ValueError):
        parse_resolver("resolver.example:53")


def test_invalid_input_exits_2_with_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(["not a domain!"]) == 2
    assert "invalid input" in capsys.readouterr().err
    assert check_main([]) == 2


def test_check_main_piped_is_plain_and_exit_code_follows_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = report_mod.run_checks

    async def fake_run(config: Config, **kwargs: Any) -> Any:
        kwargs["checks"] = [StaticCheck("spf", Status.WARN)]
        kwargs["resolver"] = resolver()
        return await real(config, **kwargs)

    monkeypatch.setattr(report_mod, "run_checks", fake_run)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert check_main(["example.com"]) == 1
    out = capsys.readouterr()
    assert "\x1b[" not in out.out
    assert "spf says warn" in out.out
    assert out.err == ""  # no progress display when stderr is not a terminal
    assert check_main(["example.com", "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["exit_code"] == 1


def test_progress_display_only_on_a_terminal() -> None:
    from exporter.report import stderr_progress

    assert stderr_progress(io.StringIO()) is None
    tty = _Tty()
    show = stderr_progress(tty)
    assert show is not None
    show(1, 2, "spf example.com")
    show(2, 2, "dkim example.com")
    assert tty.getvalue() == "\r\x1b[K[1/2] spf example.com\r\x1b[K[2/2] dkim example.com\n"


async def test_a_crashing_check_is_could_not_check() -> None:
    class Crashing(StaticCheck):
        async def run(self, target: Target, ctx: CheckContext) -> Findings:
            raise RuntimeError("boom")

    rep = await make_report([Crashing("dkim", Status.PASS)], resolver())
    assert rep.exit_code == 2
    [item] = next(g for g in rep.groups if g.name == "DKIM").items
    assert item.status == "error" and "boom" in item.title
