"""Settings survive restarts; a damaged file means defaults and a notice, never a crash."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from desktop.settings import Settings, SettingsStore, one_channel
from server.channels import PALETTE, Channel
from server.config import DEFAULT_PORT, MAX_WORKERS
from server.sources.base import SourceSpec


def test_round_trip(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "cfg" / "settings.json")
    chosen = Settings(
        channels=one_channel(SourceSpec("mic", device="USB Audio")),
        port=20100,
        workers=3,
        name="Kitchen party",
        start_on_launch=True,
        start_at_login=True,
    )
    store.save(chosen)
    loaded, notice = SettingsStore(store.path).load()
    assert loaded == chosen
    assert notice is None
    assert [p.name for p in store.path.parent.iterdir()] == ["settings.json"]  # no temp files


def test_missing_file_gives_defaults_quietly(tmp_path: Path) -> None:
    settings, notice = SettingsStore(tmp_path / "settings.json").load()
    assert settings == Settings()
    assert settings.source == SourceSpec("demo")
    assert notice is None


def test_corrupt_file_is_set_aside_and_defaults_used(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"port": 9000, "name": "half a fi', encoding="utf-8")
    settings, notice = SettingsStore(path).load()
    assert settings == Settings()
    assert notice and "damaged" in notice and "settings.damaged.json" in notice
    assert not path.exists()
    assert (tmp_path / "settings.damaged.json").read_text().startswith('{"port": 9000')


def test_not_an_object_counts_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    settings, notice = SettingsStore(path).load()
    assert settings == Settings() and notice


def test_bad_values_fall_back_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "port": 70000,
                "workers": MAX_WORKERS + 1,
                "name": "  Rooftop  ",
                "source": {"kind": "vinyl"},
                "start_on_launch": "yes",
                "start_at_login": True,
                "unknown_future_key": 1,
            }
        ),
        encoding="utf-8",
    )
    settings, notice = SettingsStore(path).load()
    assert settings.port == DEFAULT_PORT
    assert settings.workers == Settings().workers
    assert settings.name == "Rooftop"
    assert settings.source == SourceSpec("demo")
    assert settings.start_on_launch is False
    assert settings.start_at_login is True
    assert notice is not None
    for word in ("port", "workers", "source", "start on launch"):
        assert word in notice


def test_port_that_does_not_fit_the_workers_is_reset(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"port": 65535 - 2, "workers": 8}), encoding="utf-8")
    settings, notice = SettingsStore(path).load()
    assert settings.port == DEFAULT_PORT and settings.workers == 8
    assert notice and "port" in notice


def test_party_config_comes_from_settings(tmp_path: Path) -> None:
    settings = replace(Settings(), name="Garden", port=20200, workers=2)
    config = settings.party_config(tmp_path, public_host="127.0.0.1")
    assert (config.name, config.port, config.workers) == ("Garden", 20200, 2)
    assert config.log_dir == str(tmp_path) and config.public_host == "127.0.0.1"


def test_channels_round_trip(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    channels = (
        Channel("Red", "#e53935", SourceSpec("demo")),
        Channel("Anna's playlist", "#1e88e5", SourceSpec("playlist", "/m/anna.m3u", shuffle=True)),
        Channel("Green", "#43a047", SourceSpec("mic", device="USB Audio")),
    )
    store.save(Settings(channels=channels))
    loaded, notice = SettingsStore(store.path).load()
    assert loaded.channels == channels and notice is None
    assert "source" not in json.loads(store.path.read_text()), "one way to say what plays"


def test_a_file_from_before_channels_loads_as_one_channel(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    old = {"version": 1, "source": {"kind": "url", "location": "https://radio.example/x"},
           "port": 20100, "name": "Kitchen party"}  # fmt: skip
    path.write_text(json.dumps(old), encoding="utf-8")
    settings, notice = SettingsStore(path).load()
    assert notice is None
    assert settings.channels == one_channel(SourceSpec("url", "https://radio.example/x"))
    assert settings.channels[0].name == PALETTE[0][0] and settings.port == 20100


def test_bad_channels_are_set_aside_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    good = {"name": "Red", "colour": "#E53935", "source": {"kind": "demo"}}
    entries = [
        good,
        {"name": "Blue", "colour": "blue", "source": {"kind": "demo"}},  # not #rrggbb
        {"name": " ", "colour": "#1e88e5", "source": {"kind": "demo"}},
        {"name": "Vinyl", "colour": "#43a047", "source": {"kind": "vinyl"}},
        {**good, "name": "Second"},
        {**good, "name": "Third"},
        {**good, "name": "Fourth"},  # one too many
    ]
    path.write_text(json.dumps({"channels": entries}), encoding="utf-8")
    settings, notice = SettingsStore(path).load()
    assert [c.name for c in settings.channels] == ["Red", "Second", "Third"]
    assert settings.channels[0].colour == "#e53935"
    assert notice is not None
    for word in ("channel 2", "channel 3", "channel 4", "channel 7"):
        assert word in notice
    assert "channel 5" not in notice

    for hopeless in ([], "demo", [{"name": "x"}]):
        path.write_text(json.dumps({"channels": hopeless}), encoding="utf-8")
        settings, notice = SettingsStore(path).load()
        assert settings.channels == Settings().channels, "the default: one demo channel"
        assert notice and "channel" in notice
