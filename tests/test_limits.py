"""The policies behind issue 17's bounds, without processes: what a hello is admitted as,
the connection budget, the per-address gate and rate limit, the Origin rule, the log
throttle."""

from __future__ import annotations

import json
import logging

import pytest

from server import admission, limits, logs
from server.origins import LocalOrigins
from server.web import RateLimit
from tests.attacks import absurd_hello

SANE = {"codec": "flac", "sample_rate": 44100, "channels": 2, "bit_depth": 24}


def payload(hello: admission.Hello) -> dict:
    return json.loads(hello.text)["payload"]


def test_hello_keeps_only_served_formats_in_the_clients_order() -> None:
    absurd = absurd_hello("x")["payload"]["player@v1_support"]["supported_formats"][0]
    opus = {"codec": "opus", "sample_rate": 48000, "channels": 2, "bit_depth": 16}
    hello = absurd_hello("x", formats=[absurd, opus, {**SANE, "channels": 6}, SANE])
    checked = admission.check_hello(json.dumps(hello))
    assert payload(checked)["player@v1_support"]["supported_formats"] == [opus, SANE]
    assert checked.dropped_formats == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"codec": "pcm", "sample_rate": 4_000_000, "channels": 2, "bit_depth": 16},
        {"codec": "pcm", "sample_rate": 48000, "channels": 10, "bit_depth": 16},
        {"codec": "pcm", "sample_rate": 48000, "channels": 2, "bit_depth": 32},
        {"codec": "mp3", "sample_rate": 48000, "channels": 2, "bit_depth": 16},
        {"codec": "pcm", "sample_rate": 48000, "channels": 0, "bit_depth": 16},
        "pcm",
    ],
)
def test_hello_with_nothing_served_is_refused(bad: object) -> None:
    with pytest.raises(admission.Refused, match="no format this party serves"):
        admission.check_hello(json.dumps(absurd_hello("x", formats=[bad])))  # type: ignore[list-item]


def test_hello_fields_are_bounded() -> None:
    hello = absurd_hello("x", name="n" * 1000, formats=[SANE] * 100)
    hello["payload"]["device_info"]["software_version"] = "v" * 5000
    hello["payload"]["supported_roles"] = ["player@v1"] * 100
    checked = payload(admission.check_hello(json.dumps(hello)[: admission.MAX_HELLO_BYTES]))
    assert checked["name"] == "n" * admission.MAX_NAME_CHARS
    assert len(checked["device_info"]["software_version"]) == admission.MAX_TEXT_CHARS
    assert len(checked["supported_roles"]) == admission.MAX_LIST_ITEMS
    assert len(checked["player@v1_support"]["supported_formats"]) == admission.MAX_LIST_ITEMS
    assert checked["player@v1_support"]["buffer_capacity"] == admission.MAX_BUFFER_BYTES


def test_hello_refusals_for_size_ids_and_depth() -> None:
    with pytest.raises(admission.Refused, match="larger than"):
        admission.check_hello(json.dumps(absurd_hello("x", name="n" * 20_000)))
    with pytest.raises(admission.Refused, match="client_id longer"):
        admission.check_hello(json.dumps(absurd_hello("i" * 200, formats=[SANE])))
    deep: dict = {}
    for _ in range(20):
        deep = {"d": deep}
    hello = absurd_hello("x", formats=[SANE])
    hello["payload"]["device_info"] = deep
    with pytest.raises(admission.Refused, match="nested"):
        admission.check_hello(json.dumps(hello))


def test_not_a_hello_goes_to_the_library_unchanged() -> None:
    for text in ("{not json", '{"type": "client/goodbye", "payload": {}}', "[1, 2]"):
        assert admission.check_hello(text).text == text


def test_connection_budget_leaves_room_under_the_open_files_limit() -> None:
    assert limits.connection_budget(None) == limits.MAX_CONNECTIONS
    assert limits.connection_budget(1_048_576) == limits.MAX_CONNECTIONS
    assert limits.connection_budget(1024) == 1024 - limits.FD_RESERVE - limits.BACKLOG
    assert limits.connection_budget(100) == 1


def test_gate_caps_per_address_and_in_total_but_not_the_host_itself() -> None:
    gate = limits.ConnectionGate(total=40, per_address=3)
    assert [gate.admit("10.0.0.5") for _ in range(4)] == [True, True, True, False]
    assert all(gate.admit("127.0.0.1") for _ in range(10))
    gate.release("10.0.0.5")
    assert gate.admit("10.0.0.5")
    before = gate.open
    assert sum(gate.admit(f"10.0.1.{i}") for i in range(40)) == 40 - before
    assert gate.open == 40 and not gate.admit("127.0.0.1")  # the total binds everyone


def test_rate_limit_allows_a_burst_then_the_rate() -> None:
    rate = RateLimit(rate_per_s=0.0, burst=5)  # no refill during the test
    assert [rate.allow("10.0.0.7") for _ in range(7)] == [True] * 5 + [False] * 2
    assert rate.allow("10.0.0.8")
    assert all(rate.allow("127.0.0.1") for _ in range(100))


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (None, True),  # a native client
        ("http://127.0.0.1:8927", True),
        ("http://localhost:8928", True),
        ("http://party.example:8927", True),  # the QR code's host
        ("https://127.0.0.1:8927", True),
        ("http://127.0.0.1:9999", False),  # not a party port
        ("http://evil.example:8927", False),  # DNS rebinding / another site
        ("null", False),
        ("ftp://127.0.0.1:8927", False),
        ("http://127.0.0.1:notaport", False),
    ],
)
def test_origin_rule(origin: str | None, ok: bool) -> None:
    assert LocalOrigins().allowed(origin, {8927, 8928}, {"party.example"}) is ok


def test_throttle_passes_a_few_per_window_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttle = logs.Throttle(window_s=60.0, burst=3)
    logger = logging.getLogger("tests.throttle")
    logger.addFilter(throttle)

    def refuse(i: int) -> None:
        logger.warning("refused %d", i)  # one call site: one kind of message

    try:
        with caplog.at_level(logging.INFO, logger="tests.throttle"):
            for i in range(100):
                refuse(i)
            assert len(caplog.records) == 3
            throttle.window_s = 0.0  # the window is over
            refuse(100)
        assert "and 97 more like this" in caplog.records[-1].getMessage()
    finally:
        logger.removeFilter(throttle)


def test_expected_errors_lose_their_traceback() -> None:
    try:
        raise ConnectionResetError("peer gone")
    except ConnectionResetError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, (None, exc, None)
        )
    logs.QuietExpected().filter(record)
    assert record.exc_info is None and record.levelno == logging.INFO
    assert record.getMessage() == "failed: ConnectionResetError: peer gone"
