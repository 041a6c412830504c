"""Inbound commands: names, fields, and the exact error each bad frame gets."""

from __future__ import annotations

import json

import pytest

from cotiza.ws.commands import (
    COMMAND_NAMES,
    CommandError,
    DashboardSubscribe,
    DashboardUnsubscribe,
    GetData,
    GetStatus,
    Ping,
    Subscribe,
    SubscribeAlerts,
    SubscribeRatios,
    Unsubscribe,
    UnsubscribeAlerts,
    UnsubscribeRatios,
    command_name,
    parse_command,
)

AL30 = "MERV - XMEV - AL30 - 24hs"


def parse(message: object) -> object:
    return parse_command(json.dumps(message))


def error_of(text: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    return caught.value


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("ping", Ping),
        ("subscribe_ratios", SubscribeRatios),
        ("unsubscribe_ratios", UnsubscribeRatios),
        ("dashboard_subscribe", DashboardSubscribe),
        ("subscribe_dashboard", DashboardSubscribe),
        ("dashboard_unsubscribe", DashboardUnsubscribe),
        ("unsubscribe_dashboard", DashboardUnsubscribe),
        ("get_data", GetData),
        ("dashboard_get_data", GetData),
        ("get_status", GetStatus),
        ("dashboard_status", GetStatus),
        ("subscribe_alerts", SubscribeAlerts),
        ("unsubscribe_alerts", UnsubscribeAlerts),
    ],
)
@pytest.mark.parametrize("key", ["type", "action"])
def test_every_name_by_type_or_action(name: str, model: type, key: str) -> None:
    """Each command name and alias, given as type or as action, parses to its model."""
    command = parse({key: name})
    assert isinstance(command, model)
    assert command.command == name


def test_the_known_names_are_exactly_the_contract_s() -> None:
    """The union accepts the fifteen names of contract sections 4 and 6 and nothing else."""
    assert {
        "ping",
        "subscribe",
        "unsubscribe",
        "subscribe_ratios",
        "unsubscribe_ratios",
        "dashboard_subscribe",
        "subscribe_dashboard",
        "dashboard_unsubscribe",
        "unsubscribe_dashboard",
        "get_data",
        "dashboard_get_data",
        "get_status",
        "dashboard_status",
        "subscribe_alerts",
        "unsubscribe_alerts",
    } == COMMAND_NAMES


def test_action_takes_precedence_over_type() -> None:
    """When both are present, ``action`` names the command (as the prototype read it), even
    when it is not a string."""
    assert command_name({"type": "get_data", "action": "ping"}) == "ping"
    assert isinstance(parse({"type": "get_data", "action": "ping"}), Ping)
    assert error_of('{"action": null, "type": "ping"}').message == (
        "missing command: give 'type' or 'action'"
    )


@pytest.mark.parametrize("name", ["PING", "Ping", " ping "])
@pytest.mark.parametrize("key", ["type", "action"])
def test_command_names_are_case_insensitive(name: str, key: str) -> None:
    """``PING`` or ``Ping`` under either key is the ping command."""
    assert isinstance(parse({key: name}), Ping)
    assert isinstance(parse({key: "Subscribe", "instruments": ["X"]}), Subscribe)


def test_subscribe_strips_and_deduplicates_in_order() -> None:
    """Symbols are stripped and repeated ones dropped, first occurrence first."""
    command = parse({"type": "subscribe", "instruments": [f" {AL30} ", "DLR/DIC26", AL30]})
    assert isinstance(command, Subscribe)
    assert command.instruments == (AL30, "DLR/DIC26")


def test_symbols_is_accepted_for_instruments_and_loses_to_it() -> None:
    """``symbols`` works alone; when ``instruments`` is present too, it wins."""
    alone = parse({"action": "unsubscribe", "symbols": [AL30]})
    assert isinstance(alone, Unsubscribe) and alone.instruments == (AL30,)
    both = parse({"type": "subscribe", "instruments": ["DLR/DIC26"], "symbols": [AL30]})
    assert isinstance(both, Subscribe) and both.instruments == ("DLR/DIC26",)


def test_subscribe_ratios_defaults_to_all_and_keeps_a_list_of_specs() -> None:
    """No ``pairs`` means all; a list keeps ids and names as given."""
    default = parse({"type": "subscribe_ratios"})
    assert isinstance(default, SubscribeRatios) and default.pairs == "all"
    listed = parse({"type": "subscribe_ratios", "pairs": [3, "AL30-AL30D"]})
    assert isinstance(listed, SubscribeRatios) and listed.pairs == (3, "AL30-AL30D")


def test_unknown_fields_are_ignored() -> None:
    """Extra fields (a client's request id, say) do not make a command invalid."""
    assert isinstance(parse({"type": "ping", "id": 7, "command": "get_data"}), Ping)


@pytest.mark.parametrize(
    ("text", "message", "command"),
    [
        ("this is not JSON", "invalid JSON", None),
        ("{", "invalid JSON", None),
        ("[1, 2, 3]", "a command must be a JSON object", None),
        ('"ping"', "a command must be a JSON object", None),
        ("42", "a command must be a JSON object", None),
        ("{}", "missing command: give 'type' or 'action'", None),
        ('{"type": 7}', "missing command: give 'type' or 'action'", None),
        ('{"type": "launch_rockets"}', "unknown command 'launch_rockets'", "launch_rockets"),
        ('{"action": "nope"}', "unknown command 'nope'", "nope"),
        ('{"type": "subscribe"}', "'instruments' must be a non-empty list of symbols", "subscribe"),
        (
            f'{{"type": "subscribe", "instruments": "{AL30}"}}',
            "'instruments' must be a non-empty list of symbols",
            "subscribe",
        ),
        (
            '{"type": "subscribe", "instruments": []}',
            "'instruments' must be a non-empty list of symbols",
            "subscribe",
        ),
        (
            '{"type": "subscribe", "instruments": [1, 2]}',
            "every instrument must be a non-empty string",
            "subscribe",
        ),
        (
            '{"type": "subscribe", "instruments": [""]}',
            "every instrument must be a non-empty string",
            "subscribe",
        ),
        (
            '{"type": "unsubscribe", "instruments": {"a": 1}}',
            "'instruments' must be a non-empty list of symbols",
            "unsubscribe",
        ),
        (
            '{"type": "subscribe_ratios", "pairs": []}',
            "'pairs' must be \"all\" or a non-empty list",
            "subscribe_ratios",
        ),
        (
            '{"type": "subscribe_ratios", "pairs": 5}',
            "'pairs' must be \"all\" or a non-empty list",
            "subscribe_ratios",
        ),
        (
            '{"type": "subscribe_ratios", "pairs": null}',
            "'pairs' must be \"all\" or a non-empty list",
            "subscribe_ratios",
        ),
    ],
)
def test_bad_frames_get_their_exact_error(text: str, message: str, command: str | None) -> None:
    """Each bad frame raises the message (and names the command) the protocol promises."""
    error = error_of(text)
    assert (error.message, error.command) == (message, command)


def test_limits_on_symbols() -> None:
    """More than 500 symbols, or one longer than 128 characters, is refused."""
    many = json.dumps({"type": "subscribe", "instruments": [f"S{i}" for i in range(501)]})
    assert error_of(many).message == "at most 500 instruments per command"
    long = json.dumps({"type": "subscribe", "instruments": ["x" * 129]})
    assert error_of(long).message == "every instrument must be a non-empty string"
    assert isinstance(parse({"type": "subscribe", "instruments": ["x" * 128]}), Subscribe)


def test_an_unknown_name_is_echoed_at_most_64_characters() -> None:
    """A long unknown command name is cut to 64 characters in the error and its field."""
    error = error_of(json.dumps({"type": "z" * 500}))
    assert error.command == "z" * 64
    assert error.message == f"unknown command {'z' * 64!r}"
