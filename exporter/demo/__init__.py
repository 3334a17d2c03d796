"""The offline demo: bundled ``.example`` zones and a loopback DNS responder serving them.

``deliverability-exporter --demo`` starts :class:`DemoResponder` and runs the
exporter on :func:`demo_config_text`, so every check has something to find (a
listed IP, a clean one, a broken PTR, good and broken SPF, DKIM, DMARC and MX)
without any network.
"""

from exporter.demo.data import Resolution, ZoneData, demo_config_text, load_demo_zones
from exporter.demo.responder import DemoResponder, respond, start_demo_responder

__all__ = [
    "DemoResponder",
    "Resolution",
    "ZoneData",
    "demo_config_text",
    "load_demo_zones",
    "respond",
    "start_demo_responder",
]
