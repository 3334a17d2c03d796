"""Real-world bounce texts → receiver, meaning, the checks to run, the IP and domain."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter import bounce as bounce_mod
from exporter.bounce import explain, explain_main, find_domain, find_ip, prose
from exporter.checks.dnsbl import DnsblCheck
from exporter.checks.ptr import PtrCheck
from tests.fakes import FakeResolver

GMAIL_UNAUTH = """\
<someone@gmail.com>: host gmail-smtp-in.l.google.com[142.250.102.27] said:
    550-5.7.26 This mail is unauthenticated, which poses a security risk to the
    550-5.7.26 sender and Gmail users, and has been blocked. The sender must
    550-5.7.26 authenticate with at least one of SPF or DKIM. For this message,
    550-5.7.26 DKIM checks did not pass and SPF check for [shop.example] did not pass
    550-5.7.26 with ip: [192.0.2.44]. The sender should visit
    550-5.7.26  https://support.google.com/mail/answer/81126#authentication for
    550 5.7.26 instructions on setting up authentication. a1si12 - gsmtp (in reply to end
    of DATA command)
"""

GMAIL_DMARC = """\
host gmail-smtp-in.l.google.com[142.250.27.26] said: 550-5.7.26 Unauthenticated email
from news.example is not accepted due to domain's 550-5.7.26 DMARC policy. Please contact
the administrator of news.example domain 550-5.7.26 if this was a legitimate mail.
To learn about the DMARC 550-5.7.26 initiative, go to 550 5.7.26
https://support.google.com/mail/?p=DmarcRejection x5si - gsmtp
"""

GMAIL_PTR = """\
421-4.7.23 The sending IP address for this message doesn't have a PTR record setup, or
421-4.7.23 the corresponding forward DNS entry doesn't match the sending IP. Gmail
421-4.7.23 doesn't accept messages from IPs with missing PTR records. For more
421-4.7.23 information, go to https://support.google.com/mail/answer/81126#ip-practices
421 4.7.23 [192.0.2.61] - gsmtp
"""

GMAIL_SPF = """\
550-5.7.27 Your email has been blocked because the sender is unauthenticated. Gmail
550-5.7.27 requires all senders to authenticate with either SPF or DKIM.
550-5.7.27  Authentication results: SPF [legacy.example] with ip: [192.0.2.70] = did not pass
550 5.7.27 For instructions on setting up authentication, go to
https://support.google.com/mail/answer/81126#authentication - gsmtp
"""

GMAIL_TLS = """\
421-4.7.29 Your email has been rate limited because this message wasn't sent over a TLS
421-4.7.29 connection. Gmail requires all bulk email senders to use TLS/SSL for SMTP
421 4.7.29 connections. https://support.google.com/mail/answer/81126#authentication - gsmtp
"""

GMAIL_DKIM = """\
421-4.7.30 Your email has been rate limited because DKIM authentication didn't pass for
421-4.7.30 this message. Gmail requires all bulk email senders to authenticate with DKIM.
421 4.7.30 For more information, go to https://support.google.com/mail/answer/81126 - gsmtp
"""

GMAIL_DMARC_MISSING = """\
421-4.7.31 Your email has been rate limited because DMARC policy is not set for this
421-4.7.31 sender domain. Gmail requires all bulk email senders to configure a DMARC
421 4.7.31 policy. https://support.google.com/mail/answer/81126 - gsmtp
"""

GMAIL_ALIGN = """\
421-4.7.32 Your email has been rate limited because the From: header (RFC5322) in this
421-4.7.32 message isn't aligned with either the authenticated SPF or DKIM organizational
421 4.7.32 domain. https://support.google.com/mail/answer/81126 - gsmtp
"""

GMAIL_RATE = """\
421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your
421-4.7.28 IP address. To protect our users from spam, mail sent from your IP address has
421 4.7.28 been temporarily rate limited. - gsmtp
"""

GMAIL_UNSOLICITED = """\
host gmail-smtp-in.l.google.com[142.250.102.26] said: 550-5.7.1 [192.0.2.80] Our system
has detected that this message is 550-5.7.1 likely unsolicited mail. To reduce the amount
of spam sent to Gmail, 550-5.7.1 this message has been blocked. 550 5.7.1
https://support.google.com/mail/?p=UnsolicitedMessageError z1si - gsmtp
"""

MS_515 = """\
Remote Server returned '550 5.7.515 Access denied, sending domain [bulk.example] does not
meet the required authentication level. The sender's domain in the 5322.From address
doesn't meet the authentication requirements defined for the sender.
[AMS0EPF000001A8.eurprd05.prod.outlook.com 2025-05-21T10:01:12.000Z 08DD97A5]'
"""

MS_S3150 = """\
host hotmail-com.olc.protection.outlook.com[52.101.8.44] said: 550 5.7.1 Unfortunately,
messages from [192.0.2.90] weren't sent. Please contact your Internet service provider
since part of their network is on our block list (S3150). You can also refer your
provider to http://mail.live.com/mail/troubleshooting.aspx#errors.
[DB5PEPF00014B8F.eurprd02.prod.outlook.com 2024-11-08T09:12:40.000Z]
"""

MS_SPAMHAUS = """\
550 5.7.1 Service unavailable, Client host [192.0.2.91] blocked using Spamhaus. To request
removal from this list see https://www.spamhaus.org/query/ip/192.0.2.91 (AS3130)
[VI1EUR04FT012.eop-eur04.prod.protection.outlook.com]
"""

MS_606 = """\
550 5.7.606 Access denied, banned sending IP [192.0.2.92]. To request removal from this
list please visit https://sender.office.com/ and follow the directions.
"""

MS_708 = """\
550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.
"""

YAHOO_POLICY = """\
host mta6.am0.yahoodns.net[67.195.204.79] said: 554 5.7.9 Message not accepted for
policy reasons. See https://senders.yahooinc.com/error-codes (in reply to end of DATA
command)
"""

YAHOO_TSS04 = """\
host mta5.am0.yahoodns.net[98.136.96.77] said: 421 4.7.0 [TSS04] Messages from
192.0.2.100 temporarily deferred due to unexpected volume or user complaints -
4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)
"""

YAHOO_BL21 = """\
553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.101, because the ip is in
Spamhaus's list; see https://postmaster.yahooinc.com/error-codes
"""

BT = """\
host mx.bt.lon5.cpcloud.co.uk[65.20.0.49] said: 554 Message rejected: policy rejection
(permanently rejected) [192.0.2.110] mail.btinternet.com
"""

TONLINE = """\
host mx00.t-online.de[194.25.134.8] said: 554 IP=192.0.2.120 - A problem occurred. (Ask
your postmaster for help or to contact tosa@rx.t-online.de to clarify.) (BL)
"""

GMX_PTR = """\
host mx00.emig.gmx.net[212.227.15.9] said: 554-gmx.net (mxgmx017) Nemesis ESMTP Service
not available 554-No SMTP service 554-Bad DNS PTR resource record. 554 For explanation
visit https://postmaster.gmx.net/en/case?c=r0601&i=ip&v=192.0.2.130&r=1ABCDE
"""

WEBDE_BL = """\
host mx-ha03.web.de[212.227.17.8] said: 554-web.de (mxweb111) Nemesis ESMTP Service not
available 554-No SMTP service 554-IP address is black listed. 554 For explanation visit
https://postmaster.web.de/en/case?c=bl&i=ip&v=192.0.2.131&r=0ABCDE
"""

ICLOUD = """\
host mx01.mail.icloud.com[17.57.154.33] said: 554 5.7.1 [CS01] Message rejected due to
local policy. Please visit https://support.apple.com/en-us/HT204137
"""

ORANGE = """\
host smtp-in.orange.fr[193.252.22.65] said: 550 5.7.1 Service refuse. Veuillez essayer
plus tard. service refused, please try later. OFR004_104 [104]
"""

LAPOSTE = """\
host smtp-in.laposte.net[160.92.124.66] said: 550 5.7.1 Refused by local policy. LPN007_510
"""

SPAMHAUS_GENERIC = """\
host mx.example.org[198.51.100.5] said: 554 5.7.1 Service unavailable; Client host
[192.0.2.140] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.140
"""


CASES = [
    # (bounce, pattern id, must-run checks, ip, domain)
    (GMAIL_UNAUTH, "gmail-unauthenticated", {"spf", "dkim"}, "192.0.2.44", "shop.example"),
    (GMAIL_DMARC, "gmail-dmarc-policy", {"spf", "dkim", "dmarc"}, "", "news.example"),
    (GMAIL_PTR, "gmail-ptr", {"ptr"}, "192.0.2.61", ""),
    (GMAIL_SPF, "gmail-spf", {"spf"}, "192.0.2.70", ""),
    (GMAIL_TLS, "gmail-tls", {"smtp"}, "", ""),
    (GMAIL_DKIM, "gmail-dkim", {"dkim"}, "", ""),
    (GMAIL_DMARC_MISSING, "gmail-dmarc-missing", {"dmarc"}, "", ""),
    (GMAIL_ALIGN, "gmail-alignment", {"spf", "dkim", "dmarc"}, "", ""),
    (GMAIL_RATE, "gmail-rate-unsolicited", {"dnsbl", "ptr"}, "", ""),
    (GMAIL_UNSOLICITED, "gmail-low-reputation", {"dnsbl", "ptr", "spf"}, "192.0.2.80", ""),
    (MS_515, "ms-authentication-level", {"spf", "dkim", "dmarc"}, "", "bulk.example"),
    (MS_S3150, "ms-block-list", {"dnsbl", "ptr"}, "192.0.2.90", ""),
    (MS_SPAMHAUS, "ms-spamhaus", {"dnsbl"}, "192.0.2.91", ""),
    (MS_606, "ms-banned-ip", {"dnsbl"}, "192.0.2.92", ""),
    (MS_708, "ms-traffic-not-accepted", {"dnsbl", "ptr"}, "", ""),
    (YAHOO_POLICY, "yahoo-policy", {"spf", "dkim", "dmarc"}, "", ""),
    (YAHOO_TSS04, "yahoo-tss04", {"dnsbl"}, "192.0.2.100", ""),
    (YAHOO_BL21, "yahoo-blocklist", {"dnsbl"}, "192.0.2.101", ""),
    (BT, "bt-policy", {"dnsbl", "ptr"}, "192.0.2.110", ""),
    (TONLINE, "tonline-block", {"ptr", "dnsbl"}, "192.0.2.120", ""),
    (GMX_PTR, "gmx-ptr", {"ptr"}, "", ""),
    (WEBDE_BL, "gmx-blocklist", {"dnsbl"}, "", ""),
    (ICLOUD, "icloud-policy", {"dnsbl", "spf"}, "", ""),
    (ORANGE, "orange-refused", {"dnsbl", "ptr"}, "", ""),
    (LAPOSTE, "laposte-refused", {"dnsbl"}, "", ""),
    (SPAMHAUS_GENERIC, "spamhaus", {"dnsbl"}, "192.0.2.140", ""),
]


@pytest.mark.parametrize(("text", "pattern", "checks", "ip", "domain"), CASES,
                         ids=[c[1] for c in CASES])
def test_real_bounces_are_recognised(
    text: str, pattern: str, checks: set[str], ip: str, domain: str
) -> None:
    e = explain(text)
    ids = [m.pattern.id for m in e.matches]
    assert ids and ids[0] == pattern, ids
    assert checks <= set(e.checks)
    assert e.ip == ip
    assert e.domain == domain


def test_the_receiving_mx_address_is_never_taken_for_the_sender() -> None:
    # Both name the receiver as "host mx[IP] said"; only the sender IP may come out.
    assert find_ip(GMAIL_DMARC) == ""
    assert find_ip(YAHOO_POLICY) == ""
    assert find_ip(GMAIL_UNAUTH) == "192.0.2.44"


def test_gmail_dmarc_policy_wins_over_plain_unauthenticated() -> None:
    ids = [m.pattern.id for m in explain(GMAIL_DMARC).matches]
    assert "gmail-unauthenticated" not in ids


def test_a_code_shared_by_receivers_needs_the_receivers_own_words() -> None:
    # 5.7.1 alone says nothing; Microsoft's 5.7.23 is SPF, not Gmail's PTR code.
    assert not explain("550 5.7.1 Message rejected").matches
    ms_spf = "550 5.7.23 The message was rejected because of Sender Policy Framework violation"
    assert explain(ms_spf).matches[0].pattern.id == "ms-spf"


def test_continuation_codes_do_not_break_sentences() -> None:
    assert "authenticate with at least one of SPF or DKIM" in prose(GMAIL_UNAUTH)


def test_domains_come_from_the_receivers_phrases_not_recipients() -> None:
    assert find_domain("<someone@gmail.com>: 550 5.7.1 rejected") == ""
    assert find_domain("Authentication-Results: mx; spf=fail smtp.mailfrom=bounce@ret.example") \
        == "ret.example"


def test_unknown_text_is_not_recognised_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain_main(["--no-checks", "250 2.0.0 OK queued"]) == 1
    assert "Not recognised" in capsys.readouterr().out


def test_explain_without_target_only_explains(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain_main(["--format", "json", GMAIL_TLS]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["matches"][0]["id"] == "gmail-tls"
    assert doc["report"] is None


def test_explain_runs_the_matching_checks_and_names_the_failing_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    r = FakeResolver()
    r.set("2.0.0.127.zen.spamhaus.org", "A", "127.0.0.2")
    r.set("140.2.0.192.zen.spamhaus.org", "A", "127.0.0.2")
    r.set("140.2.0.192.zen.spamhaus.org", "TXT", "https://www.spamhaus.org/query/ip/192.0.2.140")
    r.set("140.2.0.192.in-addr.arpa", "PTR", "mail.example.net")
    r.set("mail.example.net", "A", "192.0.2.140")
    real = bounce_mod.run_checks
    ran: list[set[str]] = []

    async def fake_run(config: Any, **kwargs: Any) -> Any:
        ran.append(set(kwargs["only"]))
        kwargs["checks"] = [DnsblCheck(), PtrCheck()]
        kwargs["resolver"] = r
        return await real(config, **kwargs)

    monkeypatch.setattr(bounce_mod, "run_checks", fake_run)
    code = explain_main(["--dnsbl-zone", "zen.spamhaus.org", SPAMHAUS_GENERIC])
    out = capsys.readouterr().out
    assert ran == [{"dnsbl"}]
    assert code == 2
    assert "192.0.2.140 is listed on zen.spamhaus.org" in out
    assert "Failing: dnsbl" in out


def test_explain_reads_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    assert explain_main(["--no-checks"], stdin=io.StringIO(MS_515)) == 0
    assert "5.7.515" in capsys.readouterr().out


MORE_CASES = [
    ("550-5.7.1 [192.0.2.150] The IP you're using to send mail is not authorized to\n"
     "550-5.7.1 send email directly to our servers. Please use the SMTP relay at your\n"
     "550 5.7.1 service provider instead. https://support.google.com/mail/?p=NotAuthorizedError"
     " - gsmtp", "gmail-not-authorized-ip", {"dnsbl", "ptr"}, "192.0.2.150"),
    ("421-4.7.0 This message does not have authentication information or fails to\n"
     "421-4.7.0 pass authentication checks. To best protect our users from spam, the\n"
     "421 4.7.0 message has been blocked. https://support.google.com/mail/answer/81126 - gsmtp",
     "gmail-auth-checks", {"spf", "dkim"}, ""),
    ("451 4.7.650 The mail server [192.0.2.151] has been temporarily rate limited due to IP "
     "reputation. For e-mail delivery information, see https://postmaster.live.com (S775)",
     "ms-ip-reputation", {"dnsbl", "ptr"}, "192.0.2.151"),
    ("554 resimta-po-01v.sys.comcast.net resimta-po-01v.sys.comcast.net 192.0.2.152 found on "
     "one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000010",
     "comcast-blocked", {"dnsbl"}, ""),
    ("554 5.7.1 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.153",
     "proofpoint", {"dnsbl"}, "192.0.2.153"),
    ("550 5.7.1 <unknown[192.0.2.154]>: Client host rejected: cannot find your reverse "
     "hostname, [192.0.2.154]", "generic-ptr", {"ptr"}, "192.0.2.154"),
    ("504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
     "generic-helo", {"ptr"}, ""),
    ("550 5.7.1 Service unavailable; Client host [192.0.2.155] blocked using "
     "b.barracudacentral.org; https://www.barracudacentral.org/blocklist",
     "barracuda", {"dnsbl"}, "192.0.2.155"),
]


@pytest.mark.parametrize(("text", "pattern", "checks", "ip"), MORE_CASES,
                         ids=[c[1] for c in MORE_CASES])
def test_more_receivers_are_recognised(text: str, pattern: str, checks: set[str],
                                       ip: str) -> None:
    e = explain(text)
    assert e.matches and e.matches[0].pattern.id == pattern, [m.pattern.id for m in e.matches]
    assert checks <= set(e.checks)
    assert e.ip == ip


def test_a_blocklist_bounce_names_the_delisting_page() -> None:
    e = explain(MS_SPAMHAUS)
    assert e.matches[0].pattern.link == "https://check.spamhaus.org/"


def test_the_selector_comes_from_a_quoted_dkim_signature() -> None:
    text = GMAIL_DKIM + (
        "\n--- original message headers ---\n"
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=shop.example;\n"
        "\ts=Mail2026; t=1764500000; h=from:to:subject;\n"
        "From: Shop <news@shop.example>\n"
    )
    e = explain(text)
    assert e.selector == "mail2026"
    assert e.domain == "shop.example"


def test_what_cannot_run_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    # An IP-only bounce with SPF/DKIM checks: no domain, so they are named as not run.
    code = explain_main(["--ip", "192.0.2.1", "--dnsbl-zone", "bl.invalid", "--resolver",
                         "127.0.0.1:9", "--format", "json", GMAIL_UNAUTH.replace(
                             "SPF check for [shop.example]", "SPF check")])
    doc = json.loads(capsys.readouterr().out)
    assert any("give --domain" in n and "spf" in n for n in doc["not_run"])
    assert doc["report"] is None  # spf/dkim need a domain: nothing could run
    assert code == 0


def test_loopback_and_unspecified_addresses_are_not_senders() -> None:
    assert find_ip("550 rejected [127.0.0.1] and [::]") == ""


def test_every_pattern_is_well_formed() -> None:
    import re

    from exporter.bounce_patterns import PATTERNS

    known = {"dnsbl", "ptr", "spf", "dkim", "dmarc", "mx", "smtp", "mta_sts", "tlsrpt", "dane",
             "dnssec", "bimi"}
    ids = [p.id for p in PATTERNS]
    assert len(ids) == len(set(ids))
    for p in PATTERNS:
        assert p.codes or p.text, p.id  # a pattern must ask for something
        assert p.checks and set(p.checks) <= known, p.id
        assert p.meaning and p.causes, p.id
        for rx in (p.text, p.receiver_hint):
            if rx:
                re.compile(rx)
        for url in (p.link, p.source):
            assert not url or url.startswith("https://"), p.id
