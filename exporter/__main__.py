"""``python -m exporter`` does what the ``deliverability-exporter`` command does."""

from exporter.cli import main

raise SystemExit(main())
