"""An in-process resolver for unit tests: answers from a dict, no network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exporter.dns import Answer, Outcome, normalize_name

#: A zone entry: records (str or list of str), or an Outcome to fail with.
Entry = str | Iterable[str] | Outcome


class FakeResolver:
    """Serves ``{(name, rdtype): records | Outcome}``.

    A name that appears with some type but not the one asked is NODATA; a
    name that does not appear at all is NXDOMAIN. An ``Outcome`` value
    (TIMEOUT, SERVFAIL, ...) is returned as that failure. Every question is
    recorded in ``asked`` so tests can assert what was (not) looked up.
    """

    def __init__(
        self,
        data: Mapping[tuple[str, str], Entry] | None = None,
        *,
        authenticated: bool = False,
        ttl: int = 300,
    ) -> None:
        self.data: dict[tuple[str, str], Entry] = {}
        self.authenticated = authenticated
        self.ttl = ttl
        self.asked: list[tuple[str, str]] = []
        for (name, rdtype), entry in (data or {}).items():
            self.set(name, rdtype, entry)

    def set(self, name: str, rdtype: str, entry: Entry) -> None:
        self.data[(normalize_name(name), rdtype.upper())] = entry

    async def resolve(self, name: str, rdtype: str) -> Answer:
        qname, qtype = normalize_name(name), rdtype.upper()
        self.asked.append((qname, qtype))
        entry = self.data.get((qname, qtype))
        if isinstance(entry, Outcome):
            return Answer(qname, qtype, entry, detail="fake failure")
        if entry is None:
            exists = any(n == qname for n, _ in self.data)
            outcome = Outcome.NODATA if exists else Outcome.NXDOMAIN
            return Answer(qname, qtype, outcome, (), self.ttl, self.authenticated, qname)
        records = (entry,) if isinstance(entry, str) else tuple(entry)
        if not records:
            return Answer(qname, qtype, Outcome.NODATA, (), self.ttl, self.authenticated, qname)
        return Answer(qname, qtype, Outcome.OK, records, self.ttl, self.authenticated, qname)
