"""The rejection texts of the big receivers, as data: what each means and what to check.

Each pattern names its receiver, the meaning, likely causes and the checks
(by name: dnsbl, ptr, spf, dkim, dmarc, smtp, ...) that show the cause. They
are written from the receivers' own published texts:

- Gmail: "Gmail SMTP errors and codes", https://support.google.com/a/answer/3726730,
  and the sender guidelines FAQ https://support.google.com/a/answer/14229414
  (4.7.23 PTR, 4.7.27 SPF, 4.7.29 TLS, 4.7.30 DKIM, 4.7.31/4.7.40 DMARC policy,
  4.7.32 From alignment; 5.7.x from the November 2025 enforcement ramp).
- Microsoft: NDR reference "Email non-delivery reports in Exchange Online",
  https://learn.microsoft.com/exchange/mail-flow-best-practices/non-delivery-reports-in-exchange-online/non-delivery-reports-in-exchange-online
  and "Fix NDR error 550 5.7.515 in Outlook.com",
  https://support.microsoft.com/topic/34cfe8f8-6fbf-457e-9e8b-9e4dbaf4e0ef
- Yahoo: "SMTP error codes", https://senders.yahooinc.com/smtp-error-codes/
- Apple: https://support.apple.com/en-us/102322 (iCloud postmaster, HT204137).
- GMX / WEB.DE: https://postmaster.gmx.net/en/error-messages ;
  T-Online: https://postmaster.t-online.de/ ; Spamhaus: https://check.spamhaus.org/
"""

from __future__ import annotations

from dataclasses import dataclass

AUTH = ("spf", "dkim", "dmarc")
REPUTATION = ("dnsbl", "ptr", "spf", "dkim", "dmarc")


@dataclass(frozen=True, slots=True)
class Pattern:
    id: str
    receiver: str
    meaning: str
    causes: tuple[str, ...]
    checks: tuple[str, ...]
    #: Enhanced status codes (any of them must appear), or () for text-only patterns.
    codes: tuple[str, ...] = ()
    #: A regex over the normalised prose (case-insensitive), or "" for code-only patterns.
    text: str = ""
    #: A regex that must also match somewhere for the receiver to be this one.
    receiver_hint: str = ""
    source: str = ""
    #: Where to go next (delisting form, support page).
    link: str = ""
    #: 0 specific, 1 a receiver's catch-all wording, 2 generic wording: only the lowest
    #: tier that matched is reported, so "DKIM" in a Gmail text does not add noise.
    tier: int = 0

    @property
    def specificity(self) -> int:
        return (2 if self.text else 0) + (1 if self.codes else 0) + (1 if self.receiver_hint else 0)


_GOOGLE = r"google\.com|gmail|googlemail"
_MS = r"outlook\.com|hotmail|protection\.outlook|microsoft|office\.com|\.msn\.com|live\.com"
_YAHOO = r"yahoo|aol\.com|yahoodns"
_APPLE = r"icloud|apple\.com|me\.com|mac\.com"
_GMX = r"gmx\.|web\.de|1und1|ionos|mail\.com"
_TONLINE = r"t-online"
_BT = r"btinternet|bt\.com|btopenworld"
_ORANGE = r"orange\.fr|wanadoo|\bOFR\w*_\d"
_LAPOSTE = r"laposte"

_GMAIL_SRC = "https://support.google.com/a/answer/3726730"
_MS_SRC = ("https://learn.microsoft.com/exchange/mail-flow-best-practices/"
           "non-delivery-reports-in-exchange-online/non-delivery-reports-in-exchange-online")
_YAHOO_SRC = "https://senders.yahooinc.com/smtp-error-codes/"

PATTERNS: tuple[Pattern, ...] = (
    # -- Gmail ----------------------------------------------------------------
    Pattern("gmail-dmarc-policy", "Gmail",
            "Rejected because the message failed DMARC and the sender domain's DMARC policy "
            "says reject (or quarantine).",
            ("SPF and DKIM both fail or do not align with the From: domain",
             "a new sending service was not added to SPF and does not sign with DKIM"),
            AUTH, ("5.7.26", "4.7.26"), r"DMARC policy", source=_GMAIL_SRC),
    Pattern("gmail-unauthenticated", "Gmail",
            "The message is unauthenticated: neither SPF nor DKIM passed.",
            ("no SPF record, or SPF does not include the sending IP",
             "no DKIM signature, or the public key at the selector is wrong or missing"),
            ("spf", "dkim"), ("5.7.26", "4.7.26"), source=_GMAIL_SRC),
    Pattern("gmail-ptr", "Gmail",
            "The sending IP has no PTR record, or the PTR's forward lookup does not match "
            "the IP (FCrDNS).",
            ("no PTR set by the IP's owner", "PTR name has no A/AAAA record with this IP"),
            ("ptr",), ("4.7.23", "5.7.25"), source=_GMAIL_SRC),
    Pattern("gmail-spf", "Gmail",
            "SPF did not pass for this message.",
            ("sending IP not in the SPF record", "SPF permerror (too many lookups, two "
             "records)", "SPF temperror at the domain's DNS"),
            ("spf",), ("4.7.27", "5.7.27"), source=_GMAIL_SRC),
    Pattern("gmail-rate-unsolicited", "Gmail",
            "Rate limited: an unusual rate of unsolicited mail from this IP or authenticated "
            "domain.",
            ("complaints or spam-trap hits", "a sudden volume increase",
             "a compromised account or form"),
            REPUTATION, ("4.7.28", "5.7.28"), source=_GMAIL_SRC),
    Pattern("gmail-tls", "Gmail",
            "The message was not sent over TLS; Gmail requires TLS from bulk senders.",
            ("the sending MTA does not use STARTTLS outbound (smtp_tls_security_level)",),
            ("smtp",), ("4.7.29", "5.7.29"), source=_GMAIL_SRC),
    Pattern("gmail-dkim", "Gmail",
            "DKIM did not pass for this message.",
            ("message not signed", "the key at the selector is missing, revoked or does "
             "not match the signing key", "the message was modified after signing"),
            ("dkim",), ("4.7.30", "5.7.30"), source=_GMAIL_SRC),
    Pattern("gmail-dmarc-missing", "Gmail",
            "The sending domain has no DMARC record (p=none is enough).",
            ("no _dmarc TXT record", "the DMARC record does not parse"),
            ("dmarc",), ("4.7.31", "5.7.31", "4.7.40", "5.7.40"), source=_GMAIL_SRC),
    Pattern("gmail-alignment", "Gmail",
            "The From: domain is not aligned with the SPF or DKIM domain (DMARC alignment).",
            ("the envelope sender (Return-Path) is the service provider's domain and DKIM "
             "signs with the provider's domain, not yours",),
            AUTH, ("4.7.32", "5.7.32"), source=_GMAIL_SRC),
    Pattern("gmail-low-reputation", "Gmail",
            "Blocked as likely unsolicited, or because of the very low reputation of the "
            "sending IP or domain.",
            ("complaints", "listed IP", "missing or broken authentication"),
            REPUTATION, ("5.7.1", "4.7.0", "5.7.0"),
            r"likely unsolicited|low reputation|suspicious due to", _GOOGLE, _GMAIL_SRC),
    Pattern("gmail-not-authorized-ip", "Gmail",
            "The IP is not authorised to send mail directly to Gmail (an end-user or dynamic "
            "range): relay through your provider's smarthost.",
            ("sending from a residential / dynamic IP listed in Spamhaus PBL",),
            ("dnsbl", "ptr"), ("5.7.1",), r"not authorized to send email directly",
            _GOOGLE, _GMAIL_SRC),
    Pattern("gmail-auth-checks", "Gmail",
            "The message has no authentication information or fails SPF and DKIM checks.",
            ("no SPF record or the IP is not in it", "no or broken DKIM signature"),
            ("spf", "dkim"), ("4.7.0", "5.7.1", "4.7.26"),
            r"does not have authentication information|fails to pass authentication checks",
            _GOOGLE, _GMAIL_SRC),
    # -- Microsoft --------------------------------------------------------------
    Pattern("ms-authentication-level", "Microsoft Outlook.com",
            "The From: domain does not meet the authentication Outlook.com requires of "
            "high-volume senders (SPF and DKIM pass, DMARC p=none at least, aligned).",
            ("no DMARC record", "SPF or DKIM failing", "neither aligned with From:"),
            AUTH, ("5.7.515",), source="https://support.microsoft.com/topic/"
            "34cfe8f8-6fbf-457e-9e8b-9e4dbaf4e0ef"),
    Pattern("ms-block-list", "Microsoft Outlook.com",
            "The sending IP (or its network) is on Microsoft's own block list.",
            ("poor IP reputation at Microsoft (complaints, traps)", "a new IP without history",
             "a shared range with bad neighbours"),
            ("dnsbl", "ptr"), (), r"\bS3150\b|\bS3140\b|\bS3115\b|part of their network is on "
            r"our block list", "", _MS_SRC, "https://olcsupport.office.com/"),
    Pattern("ms-spamhaus", "Microsoft Exchange Online",
            "The client IP is blocked because Spamhaus lists it.",
            ("the IP is on a Spamhaus list (SBL, XBL/CBL or PBL)",),
            ("dnsbl",), ("5.7.1", "5.7.0"), r"Client host \[[^\]]+\] blocked using Spamhaus",
            "", _MS_SRC, "https://check.spamhaus.org/"),
    Pattern("ms-banned-ip", "Microsoft Exchange Online",
            "Access denied, banned sending IP: Microsoft's delist portal must clear it.",
            ("poor reputation of the IP at Microsoft",),
            ("dnsbl", "ptr"), ("5.7.606",), source=_MS_SRC, link="https://sender.office.com/"),
    Pattern("ms-traffic-not-accepted", "Microsoft Exchange Online",
            "Access denied, traffic not accepted from this IP (mostly new or low-reputation "
            "IPs, or tenants sending spam).",
            ("a new IP without reputation", "spam from the sending tenant"),
            ("dnsbl", "ptr"), ("5.7.708", "5.7.705", "5.7.750"), source=_MS_SRC),
    Pattern("ms-ip-reputation", "Microsoft Outlook.com / Exchange Online",
            "The sending IP is temporarily rate limited because of its reputation.",
            ("a new IP ramping up too fast", "complaints or spam-trap hits", "a listing"),
            ("dnsbl", "ptr"), ("4.7.650", "4.7.651", "4.7.652"), source=_MS_SRC,
            link="https://sender.office.com/"),
    Pattern("ms-spf", "Microsoft Exchange Online",
            "Rejected because of a Sender Policy Framework violation (SPF fail).",
            ("sending IP not in SPF",), ("spf",), ("5.7.23",),
            r"Sender Policy Framework", source=_MS_SRC),
    Pattern("ms-dmarc-reject", "Microsoft Exchange Online",
            "The sending domain failed DMARC and its policy is reject.",
            ("SPF and DKIM both fail or do not align",),
            AUTH, ("5.7.509",), source=_MS_SRC),
    # -- Yahoo / AOL -------------------------------------------------------------
    Pattern("yahoo-unauthenticated", "Yahoo/AOL",
            "The sender is unauthenticated: Yahoo requires SPF or DKIM.",
            ("no SPF pass and no valid DKIM signature",),
            ("spf", "dkim"), ("5.7.9",), r"unauthenticated", _YAHOO, _YAHOO_SRC),
    Pattern("yahoo-policy", "Yahoo/AOL",
            "Message not accepted for policy reasons: most often a DMARC failure under a "
            "reject policy, or failing the February 2024 sender requirements.",
            ("DMARC fail (SPF and DKIM fail or do not align)", "no DMARC record for bulk mail",
             "content or reputation"),
            (*AUTH, "ptr"), ("5.7.9",), r"not accepted for policy reasons", "", _YAHOO_SRC),
    Pattern("yahoo-tss04", "Yahoo/AOL",
            "Temporarily deferred because of unexpected volume or user complaints.",
            ("complaints", "volume spikes", "poor list hygiene"),
            REPUTATION, (), r"\[TSS04\]", "", _YAHOO_SRC),
    Pattern("yahoo-ts-deferred", "Yahoo/AOL",
            "Messages from this IP are deferred or permanently deferred (reputation).",
            ("complaints, traps, or a listed IP",), REPUTATION, (),
            r"\[TS0[1-3]\]|\[TSS0[0-9]\]|\[TSS1[0-9]\]", "", _YAHOO_SRC),
    Pattern("yahoo-blocklist", "Yahoo/AOL",
            "Connections refused because the IP is on a blocklist Yahoo uses (BL21: Spamhaus; "
            "BL22/BL23: other lists).",
            ("the IP is listed",), ("dnsbl",), (), r"\[BL2[1-3]\]", "", _YAHOO_SRC,
            "https://check.spamhaus.org/"),
    # -- Apple -------------------------------------------------------------------
    Pattern("icloud-policy", "Apple iCloud",
            "Rejected due to local policy (reputation, authentication or content).",
            ("failing SPF/DKIM/DMARC", "IP reputation", "no PTR"),
            REPUTATION, (), r"\[(?:CS|HM|IR)\d\d\]|HT204137|support\.apple\.com/(?:en-us/)?"
            r"(?:102322|HT204137)", "", "https://support.apple.com/en-us/102322"),
    # -- GMX / WEB.DE (1&1 Mail & Media) -------------------------------------------
    Pattern("gmx-ptr", "GMX / WEB.DE",
            "No valid reverse DNS: the IP's PTR is missing or not forward-confirmed.",
            ("no PTR", "PTR does not resolve back to the IP", "generic/dynamic-looking PTR"),
            ("ptr",), (), r"Bad DNS PTR resource record|c=r0601", "",
            "https://postmaster.gmx.net/en/error-messages"),
    Pattern("gmx-blocklist", "GMX / WEB.DE",
            "The IP address is on a blocklist used by GMX/WEB.DE.",
            ("a public DNSBL listing", "1&1's own reputation data"),
            ("dnsbl",), (), r"IP address is black ?listed|c=bl\d*", "",
            "https://postmaster.gmx.net/en/error-messages"),
    Pattern("gmx-policy", "GMX / WEB.DE",
            "Rejected due to policy restrictions (authentication, headers or reputation).",
            ("SPF/DKIM/DMARC failing", "missing Message-ID/Date header", "reputation"),
            REPUTATION, (), r"Reject due to policy restrictions|Nemesis ESMTP", _GMX,
            "https://postmaster.gmx.net/en/error-messages", tier=1),
    # -- T-Online ------------------------------------------------------------------
    Pattern("tonline-block", "T-Online",
            "T-Online's own blocklist refuses the IP: it wants a PTR with a real host name, "
            "a working website with an imprint at the PTR's domain, and a clean reputation.",
            ("no or generic PTR", "no imprint at the PTR domain", "new IP without history"),
            ("ptr", "dnsbl"), (), r"tosa@rx\.t-online\.de|\(BL\)", _TONLINE,
            "https://postmaster.t-online.de/"),
    # -- BT ------------------------------------------------------------------------
    Pattern("bt-policy", "BT (btinternet.com)",
            "Permanently rejected by BT's filtering (policy rejection): usually IP "
            "reputation or authentication.",
            ("a listed IP", "no PTR", "SPF/DKIM/DMARC failing"),
            REPUTATION, (), r"policy rejection|permanently rejected", _BT),
    # -- Orange / La Poste -----------------------------------------------------------
    Pattern("orange-refused", "Orange (orange.fr / wanadoo.fr)",
            "Service refused: Orange's reputation filter rejects the IP (OFR codes).",
            ("IP reputation", "no PTR", "authentication failing"),
            REPUTATION, (), r"\bOFR\w*_\d+|service refus", _ORANGE,
            "https://postmaster.orange.fr/"),
    Pattern("laposte-refused", "La Poste (laposte.net)",
            "La Poste refused the message (LPN codes): reputation or authentication.",
            ("IP reputation", "no PTR", "SPF/DKIM/DMARC failing"),
            REPUTATION, (), r"\bLPN\d+_\d+", _LAPOSTE, "https://postmaster.laposte.net/"),
    # -- others ----------------------------------------------------------------------
    Pattern("comcast-blocked", "Comcast (xfinity)",
            "Comcast refuses the IP on reputation or blocklist grounds (BL/RL codes).",
            ("a public blocklist listing (BL000010: Spamhaus)", "Comcast's own reputation data",
             "no or generic PTR (BL000001)"),
            ("dnsbl", "ptr"), (), r"\b(?:BL|RL)0000\d\d\b", r"comcast",
            "https://postmaster.comcast.net/smtp-error-codes.php"),
    Pattern("proofpoint", "a receiver protected by Proofpoint",
            "Proofpoint's reputation service blocks the IP.", ("IP reputation",),
            ("dnsbl", "ptr"), (), r"ipcheck\.proofpoint\.com|proofpoint\.com/dnsbl", "", "",
            "https://ipcheck.proofpoint.com/"),
    # -- blocklists named in any receiver's text ---------------------------------------
    Pattern("spamhaus", "any receiver using Spamhaus",
            "The receiver refused the IP because a Spamhaus list (ZEN: SBL, XBL, PBL; or the "
            "DBL for domains) lists it.",
            ("spam or a compromised host (XBL)", "an end-user range (PBL)", "SBL listing"),
            ("dnsbl",), (), r"spamhaus\.org|zen\.spamhaus|blocked using spamhaus", "", "",
            "https://check.spamhaus.org/"),
    Pattern("barracuda", "any receiver using Barracuda",
            "Barracuda's reputation list (BRBL) lists the IP.", ("IP reputation",),
            ("dnsbl",), (), r"barracudacentral|b\.barracuda", "", "",
            "https://www.barracudacentral.org/rbl/removal-request"),
    Pattern("spamcop", "any receiver using SpamCop", "SpamCop lists the IP.",
            ("spam reports",), ("dnsbl",), (), r"spamcop", "", "",
            "https://www.spamcop.net/bl.shtml"),
    Pattern("generic-blocklist", "a receiver using a DNS blocklist",
            "The receiver names a DNS blocklist that lists the sending IP.",
            ("the IP is listed",), ("dnsbl",), (),
            r"blocked using [a-z0-9.-]+|listed (?:at|in|on) [a-z0-9.-]+\.[a-z]{2,}|\bRBL\b|"
            r"\bDNSBL\b|block ?list", tier=2),
    # -- generic wording ---------------------------------------------------------------
    Pattern("generic-ptr", "a receiver checking reverse DNS",
            "The receiver wants a PTR (reverse DNS) that resolves back to the IP.",
            ("no PTR", "PTR not forward-confirmed"), ("ptr",), (),
            r"reverse (?:DNS|lookup)|\bPTR\b|\brDNS\b|client host name|cannot find your "
            r"(?:reverse )?hostname|FCrDNS", tier=2),
    Pattern("generic-helo", "a receiver checking the HELO name",
            "The receiver rejects the HELO/EHLO name (not a resolvable, fully-qualified name, "
            "or not matching the IP).",
            ("HELO is a bare host name or localhost", "HELO name has no A/AAAA record",
             "HELO name differs from the PTR"),
            ("ptr",), (), r"Helo command rejected|need fully-qualified hostname|invalid HELO|"
            r"HELO (?:name )?(?:not found|mismatch)", tier=2),
    Pattern("generic-spf", "a receiver checking SPF", "SPF failed at the receiver.",
            ("sending IP not authorised",), ("spf",), (), r"\bSPF\b", tier=2),
    Pattern("generic-dkim", "a receiver checking DKIM", "DKIM failed at the receiver.",
            ("unsigned or broken signature",), ("dkim",), (), r"\bDKIM\b", tier=2),
    Pattern("generic-dmarc", "a receiver checking DMARC", "DMARC failed at the receiver.",
            ("SPF and DKIM fail or do not align",), AUTH, (), r"\bDMARC\b", tier=2),
    Pattern("generic-tls", "a receiver requiring TLS", "The receiver requires TLS.",
            ("no STARTTLS on the sending side",), ("smtp",), ("5.7.10", "5.7.11"),
            r"TLS|STARTTLS|encryption required", tier=2),
)
