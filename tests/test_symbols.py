"""Short symbol names: unique per settlement, and resolved back to Primary's full names."""

from __future__ import annotations

from cotiza.models import resolve_symbol, short_symbol, symbol_resolver

KNOWN = [
    "MERV - XMEV - AL30 - 24hs",
    "MERV - XMEV - AL30 - CI",
    "MERV - XMEV - AL30D - 24hs",
    "DLR/DIC26",
]


def test_short_names_keep_a_suffix_for_other_settlements() -> None:
    """24hs drops to the ticker; any other settlement stays as a suffix; futures unchanged."""
    assert short_symbol("MERV - XMEV - AL30 - 24hs") == "AL30"
    assert short_symbol("MERV - XMEV - AL30 - CI") == "AL30 CI"
    assert short_symbol("MERV - XMEV - GD30 - 48hs") == "GD30 48hs"
    assert short_symbol("DLR/DIC26") == "DLR/DIC26"


def test_resolver_maps_short_and_full_names() -> None:
    """AL30 is the 24hs symbol, AL30 CI the CI one, any case; full names map to themselves."""
    resolve = symbol_resolver(KNOWN)
    assert resolve("AL30") == "MERV - XMEV - AL30 - 24hs"
    assert resolve(" al30 ") == "MERV - XMEV - AL30 - 24hs"
    assert resolve("AL30 CI") == "MERV - XMEV - AL30 - CI"
    assert resolve("merv - xmev - al30d - 24hs") == "MERV - XMEV - AL30D - 24hs"
    assert resolve("MERV - XMEV - AL30 - CI") == "MERV - XMEV - AL30 - CI"
    assert resolve("dlr/dic26") == "DLR/DIC26"


def test_unknown_and_ambiguous_names_resolve_to_nothing() -> None:
    """A name matching nothing, or two symbols alike, is not guessed."""
    assert resolve_symbol("NOPE", KNOWN) is None
    assert resolve_symbol("AL30D CI", KNOWN) is None
    assert resolve_symbol("ab", ["AB", "Ab"]) is None
    assert resolve_symbol("AL30", []) is None
