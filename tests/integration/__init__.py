"""Integration tests: the exporter run as a user runs it, against real servers on loopback."""
