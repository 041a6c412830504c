"""The health panel reads the service's notes in the page's language, never raw English."""

from __future__ import annotations

import pytest
from browser_harness import OpenDashboard
from support.server import LiveService

pytestmark = pytest.mark.browser

# What the service writes in checks' ``output`` (cotiza/health.py, storage/database.py,
# cluster/health.py), one of each shape.
NOTES = [
    "12 ticks dropped in the last 60 s (queue full; 340 since start)",
    "12 ticks dropped in the last 60 s (queue full; 340 since start); 7 samples buffered",
    "7 samples buffered",
    "3 consecutive failures: OperationalError",
    "the directory /srv/cotiza was removed; writes since then are lost",
    "the database file /srv/cotiza/cotiza.db was removed; writes since then are lost",
    "the database file /srv/cotiza/cotiza.db was replaced by another file; restart to use it",
    "the database file /srv/cotiza/cotiza.db cannot be read: Permission denied",
    "following the cluster leader's feed over the backplane",
    "no leader holds the lease",
    "this node's subscription receives nothing while Redis answers",
    "the backplane does not answer (shared outage): retrying",
]

DESCRIBE = """async (notes) => {
  const health = await import("/static/health.js");
  const i18n = await import("/static/i18n.js");
  const out = {};
  for (const lang of ["es", "en"]) {
    i18n.setLang(lang);
    out[lang] = notes.map((note) => health.describeOutput(note));
  }
  return out;
}"""


async def test_every_service_note_is_translated(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    opened = await open_dashboard(service)
    described = await opened.page.evaluate(DESCRIBE, NOTES)
    for note, es, en in zip(NOTES, described["es"], described["en"], strict=True):
        assert es["raw"] is None and en["raw"] is None, (note, es, en)  # no "detalle técnico"
        assert es["text"] != en["text"], (note, es)  # Spanish, not the English note
    by_note = dict(zip(NOTES, described["es"], strict=True))
    assert by_note[NOTES[1]]["text"] == (
        "12 ticks descartados en los últimos 60 s (cola llena; 340 desde el inicio); "
        "7 muestras en espera de escritura"
    )
    assert "/srv/cotiza/cotiza.db" in by_note[NOTES[5]]["text"]  # the path is kept
    assert "Permission denied" in by_note[NOTES[7]]["text"]
    assert not opened.errors
