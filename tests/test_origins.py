"""The one origin rule (ALLOWED_ORIGINS) shared by CORS, WebSockets and writes."""

from __future__ import annotations

import logging

import pytest

from cotiza.origins import MAX_REMEMBERED, OriginPolicy, normalise, validate


def test_origins_are_normalised() -> None:
    """Scheme and host in lower case, default port and trailing slash dropped."""
    assert normalise("HTTP://Page.Example:80/") == "http://page.example"
    assert normalise("https://page.example:443") == "https://page.example"
    assert normalise("http://10.0.0.5:8080") == "http://10.0.0.5:8080"
    assert validate(["*", " http://a.example:81 ", ""]) == ["*", "http://a.example:81"]


@pytest.mark.parametrize(
    "bad", ["junk", "page.example", "http://", "http://a.example/path", "ftp://a.example",
            "http://a.example:99999", "http://user:pw@a.example"],
)  # fmt: skip
def test_anything_but_an_origin_is_refused(bad: str) -> None:
    """A value that is not scheme://host[:port] is a configuration error."""
    with pytest.raises(ValueError):
        validate([bad])


def test_policy_allows_non_browsers_same_host_listed_and_star() -> None:
    """No Origin, the page's own host, a listed origin pass; others and "null" do not."""
    policy = OriginPolicy(["http://desk.example:8123"])
    assert policy.allows(None, "svc:8000")
    assert policy.allows("http://svc:8000", "svc:8000")
    assert policy.allows("http://SVC", "svc:80")
    assert policy.allows("http://desk.example:8123", "svc:8000")
    assert not policy.allows("http://evil.example", "svc:8000")
    assert not policy.allows("null", "svc:8000")
    assert not policy.allows("http://svc:8001", "svc:8000")
    assert policy.allows_cross_origin("http://desk.example:8123")
    assert not policy.allows_cross_origin("http://svc:8000")
    anything = OriginPolicy(["*"])
    assert anything.allows("http://evil.example", "svc:8000") and anything.any


def test_a_refused_origin_is_logged_once_naming_the_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each refused origin is logged once with ALLOWED_ORIGINS; counts keep growing."""
    policy = OriginPolicy([])
    with caplog.at_level(logging.WARNING, logger="cotiza.origins"):
        for _ in range(3):
            policy.refused("http://page.example:9000", "websocket")
    assert len(caplog.records) == 1
    assert "ALLOWED_ORIGINS=http://page.example:9000" in caplog.records[0].getMessage()
    (entry,) = policy.report()["refused"]
    assert (entry["origin"], entry["count"], entry["where"]) == (
        "http://page.example:9000",
        3,
        "websocket",
    )


def test_refused_origins_are_bounded() -> None:
    """A flood of distinct origins keeps at most MAX_REMEMBERED of them."""
    policy = OriginPolicy([])
    for i in range(MAX_REMEMBERED + 50):
        policy.refused(f"http://o{i}.example", "cors")
    assert len(policy.report()["refused"]) == MAX_REMEMBERED
