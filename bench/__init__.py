"""Benchmarks that measure the exporter against a ceiling and a baseline in one run.

They run outside the unit tests (``python -m bench.dnsbl``); CI runs only a
tiny smoke size of them, without timing assertions.
"""
