"""Channels in the tray app over a FakeParty: the menu's shape with one and with several
channels, add / rename / remove / pick a source per channel before and during a party, a
refused change, and the QR window's per-channel chips. test_channels_party.py runs them
against the real coordinator."""

from __future__ import annotations

from PySide6.QtWidgets import QInputDialog

from server.channels import PALETTE
from server.sources.base import SourceSpec
from tests.desktop.fakes import channel_rows
from tests.desktop.test_shell import Rig, go_live
from tests.helpers import eventually


def top_level(rig: Rig) -> list[str]:
    """The tray menu's visible entries, as the host reads them (sections as "[…]")."""
    out = []
    for action in rig.menu.menu.actions():
        if not action.isVisible():
            continue
        if action.isSeparator():
            out.append(f"[{action.text()}]" if action.text() else "-")
        else:
            out.append(action.text())
    return out


def submenu(menu) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.text() for a in menu.actions() if a.isVisible() and not a.isSeparator()]


async def test_one_channel_menu_is_as_before_and_grows_into_a_channels_section(rig: Rig) -> None:
    menu = rig.menu
    entries = top_level(rig)
    assert "Source: Demo music" in entries and "[Channels]" not in entries
    assert not [e for e in entries if "channel" in e.lower()], "nothing new at the top"
    source = submenu(menu.channels[0].menu)
    assert source[-1] == "Add a second channel"
    assert "Rename…" not in source and "Remove channel" not in source

    menu.add_channel.trigger()
    await eventually(lambda: len(rig.host.channels) == 2, timeout=5, what="two channels")
    assert [c.name for c in rig.saved().channels] == ["Red", "Blue"]
    assert [c.colour for c in rig.saved().channels] == [PALETTE[0][1], PALETTE[1][1]]
    entries = top_level(rig)
    at = entries.index("[Channels]")
    assert entries[at + 1 : at + 4] == ["Red · Demo music", "Blue · Demo music", "Add channel"]
    assert "Next track" not in entries, "each channel has its own"
    assert "Add a second channel" not in submenu(menu.channels[0].menu)
    assert submenu(menu.channels[1].menu)[-2:] == ["Rename…", "Remove channel"]
    assert rig.shell.window.source_button.menu() is menu.channels_menu

    menu.add_channel.trigger()
    await eventually(lambda: len(rig.host.channels) == 3, timeout=5, what="three channels")
    assert not menu.add_channel.isVisible(), "three at most"
    assert [c.name for c in rig.host.channels] == ["Red", "Blue", "Green"]

    # Rename Blue through its own dialog, then remove Red: Blue and Green remain, in order.
    menu.channels[1].rename.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, QInputDialog) and dialog.textValue() == "Blue"
    dialog.setTextValue("  Anna's playlist ")
    dialog.accept()
    await eventually(lambda: rig.host.channels[1].name == "Anna's playlist", timeout=5)
    assert await rig.host.rename_channel(2, "anna's PLAYLIST") is False
    assert rig.notices[-1] == ("warning", "Another channel is already called anna's PLAYLIST.")
    menu.channels[0].remove.trigger()
    await eventually(lambda: len(rig.host.channels) == 2, timeout=5, what="removed")
    assert [c.name for c in rig.saved().channels] == ["Anna's playlist", "Green"]
    assert menu.add_channel.isVisible()
    # A new channel takes the free colour, not one in use.
    menu.add_channel.trigger()
    await eventually(lambda: len(rig.host.channels) == 3, timeout=5)
    assert rig.host.channels[2].colour == PALETTE[0][1]

    for index in (2, 1):
        menu.channels[index].remove.trigger()
        await eventually(lambda i=index: len(rig.host.channels) == i, timeout=5)
    assert top_level(rig).count("Source: Demo music") == 1, "back to the one-channel menu"
    assert rig.shell.window.source_button.menu() is menu.channels[0].menu
    assert await rig.host.remove_channel(0) is False, "never the last channel"


async def test_live_party_follows_each_channel_change(rig: Rig) -> None:
    await go_live(rig)
    party, menu = rig.party, rig.menu
    menu.add_channel.trigger()
    await eventually(lambda: len(party.channel_sets) == 2, timeout=5, what="set_channels")
    assert [c.name for c in party.channel_sets[-1]] == ["Red", "Blue"]

    # The second channel's own source picker switches only that channel.
    menu.channels[1].mic_actions[2].trigger()
    await eventually(lambda: party.switched == [1], timeout=5, what="switch on channel 1")
    assert party.sources[-1] == SourceSpec("mic", device="USB Audio Mic")
    assert rig.saved().channels[1].source == SourceSpec("mic", device="USB Audio Mic")
    assert rig.saved().channels[0].source == SourceSpec("demo")
    assert menu.channels[1].mic_actions[2].isChecked() and menu.channels[0].demo.isChecked()
    assert menu.channels[1].type_track.isVisible() and not menu.channels[0].type_track.isVisible()

    # Tracks belong to a channel: Next on the playlist channel skips there.
    rig.menu.source_chosen.emit(SourceSpec("playlist", "/music/mix.m3u"), 1)
    await eventually(lambda: party.switched == [1, 1], timeout=5, what="playlist on 1")
    assert menu.channels[1].next_track.isVisible() and not menu.channels[0].next_track.isVisible()
    assert not menu.next_track.isVisible(), "no channel-less Next with several channels"
    menu.channels[1].next_track.trigger()
    await eventually(lambda: party.skips == [1], timeout=5, what="skip on channel 1")

    # The party refuses a change: said once, in its words; nothing is saved.
    party.fail_switch = "The input 'USB' is not connected."
    menu.add_channel.trigger()
    await rig.shell.drain()
    assert rig.notices[-1] == ("error", "The input 'USB' is not connected.")
    assert len(rig.host.channels) == 2 and len(rig.saved().channels) == 2
    assert menu.add_channel.isEnabled(), "ready for another try"

    # Per-channel counts: the menu and the QR window's chips follow the party's report.
    party.report(listeners=5, channels=channel_rows(party.channel_sets[-1], [3, 2]))
    assert menu.channels[0].menu.title() == "Red · Demo music · 3"
    assert menu.channels[1].menu.title() == "Blue · mix.m3u · 2"
    window = rig.shell.window
    assert window.chips.isVisibleTo(window)
    assert [c.text() for c in window.chip_labels] == ["Red  3", "Blue  2"]
    assert window.count.text() == "5", "the total stays"

    party.fail_switch = None
    await rig.host.rename_channel(1, "The long-named bar upstairs")
    party.report(channels=channel_rows(party.channel_sets[-1], [3, 2]))
    assert [c.text() for c in window.chip_labels] == ["Red  3", "The long-name…  2"]
    assert window.chip_labels[1].toolTip().startswith("The long-named bar upstairs: ")
    # Talk-over aimed at a channel follows it; once that channel is gone, every channel.
    await rig.host.set_talk_config(None, 1, "push")
    menu.add_channel.trigger()
    await eventually(lambda: len(party.channel_sets[-1]) == 3, timeout=5, what="a third")
    menu.channels[0].remove.trigger()
    await eventually(lambda: len(party.channel_sets[-1]) == 2, timeout=5, what="Red gone")
    assert rig.saved().channels[0].name == "The long-named bar upstairs"
    assert rig.saved().talk_channel == 0
    menu.channels[0].remove.trigger()
    await eventually(lambda: len(party.channel_sets[-1]) == 1, timeout=5, what="back to one")
    assert rig.saved().talk_channel is None
    party.report(channels=channel_rows(party.channel_sets[-1], [5]))
    assert not window.chips.isVisibleTo(window), "one channel looks as before"
