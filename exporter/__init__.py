"""deliverability-exporter: find out your mail is being refused before your users do."""

__version__ = "0.1.0"
