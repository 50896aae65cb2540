"""`partystream serve`: the headless party (no display, no sound card needed)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import replace

import segno

from server import logs, winloop
from server.channels import MAX_CHANNELS, Channel, default_channel, parse_arg
from server.config import DEFAULT_PORT, MAX_WORKERS, ConfigError, PartyConfig, default_workers
from server.control import PartyController, PartyError, PartyStatus
from server.interrupts import Interrupts
from server.phase import Phase
from server.sources.base import SourceSpec

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FORCED = 0, 1, 2, 130


def build_parser(prog: str = "partystream serve") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Host a silent-disco party: phones scan the QR code and listen."
    )
    parser.add_argument(
        "source",
        nargs="?",
        help="a music file, a folder or M3U/M3U8/PLS playlist, an http(s) URL, "
        "'system' (what this computer plays), 'mic', or 'demo'",
    )
    parser.add_argument(
        "--shuffle", action="store_true", help="play a folder or playlist in random order"
    )
    parser.add_argument("--demo", action="store_true", help="play the built-in demo music")
    parser.add_argument("--device", help="capture device name for 'mic'")
    parser.add_argument(
        "--channel",
        action="append",
        metavar="NAME=SOURCE",
        help=f"a channel guests can pick (repeat for up to {MAX_CHANNELS}); SOURCE as above, "
        "or 'mic:DEVICE'",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"listener server processes, 1–{MAX_WORKERS} (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port phones connect to; workers use the next ones "
        "(default: %(default)s; a busy port moves to the next free one)",
    )
    parser.add_argument("--name", default="Party Stream", help="party name shown on phones")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--public-host", help="address to put in the QR code (default: LAN IP)")
    parser.add_argument(
        "--live-delay-ms",
        type=int,
        default=500,
        help="delay for live capture sources (default: %(default)s)",
    )
    parser.add_argument("--pin", help="phones need this PIN to join (letters or digits)")
    parser.add_argument(
        "--max-listeners", type=int, help="at most this many phones; the next one sees 'full'"
    )
    parser.add_argument(
        "--log-dir", default=logs.default_log_dir(), help="detailed logs (default: %(default)s)"
    )
    return parser


def parse_source(args: argparse.Namespace) -> SourceSpec:
    if args.demo or args.source in (None, "demo"):
        return SourceSpec("demo")
    return _source(args.source, args.device, args.shuffle)


def _source(text: str, device: str | None, shuffle: bool) -> SourceSpec:
    if text in ("system", "mic"):
        return SourceSpec(text, device=device)
    kind, sep, name = text.partition(":")
    if sep and kind in ("mic", "device") and name:
        return SourceSpec("mic", device=name)
    spec = SourceSpec.parse(text)
    if spec.kind in ("file", "playlist") and not os.path.exists(os.path.expanduser(spec.location)):
        raise ConfigError(f"File not found: {spec.location}")
    if shuffle:
        if spec.kind != "playlist":
            raise ConfigError("--shuffle works with a folder or a playlist file.")
        spec = replace(spec, shuffle=True)
    return spec


def parse_channels(args: argparse.Namespace) -> SourceSpec | list[Channel]:
    """`--channel NAME=SOURCE` (1–3 times), or the single source as before channels."""
    if not args.channel:
        return parse_source(args)
    if args.source is not None or args.demo:
        raise ConfigError("Give either a source or --channel options, not both.")
    if len(args.channel) > MAX_CHANNELS:
        raise ConfigError(f"A party has at most {MAX_CHANNELS} channels.")
    channels = []
    for i, text in enumerate(args.channel):
        name, source = parse_arg(text, i)
        if not source:
            raise ConfigError(f"--channel {text}: say what it plays, e.g. {name}=demo")
        spec = _source(source, args.device, shuffle=False)
        if args.shuffle and spec.kind == "playlist":  # --shuffle: every playlist channel
            spec = replace(spec, shuffle=True)
        channels.append(replace(default_channel(i, spec), name=name))
    return channels


class Console:
    """Banner, QR code and a live one-line listener count."""

    def __init__(self, stream=sys.stdout) -> None:
        self.out = stream
        self.tty = stream.isatty()
        self._last = ""
        self._live = False  # no status lines before the banner
        self._tracks: dict[str, dict] = {}  # the last track shown, per channel name

    def banner(self, status: PartyStatus) -> None:
        pin = status.access.get("pin")
        url = status.url + (f"#pin={pin}" if pin else "")  # scanning the code just works
        qr = segno.make(url, error="m")
        what = status.source.get("label", "")
        if len(status.channels) > 1:
            what = " · ".join(f"{c['name']}: {c['source']}" for c in status.channels)
        print(f"\n🎧  {status.name} is live — {what}", file=self.out)
        if self.tty:
            qr.terminal(out=self.out, compact=True)
        print(f"Phones open: {url}", file=self.out)
        if pin:
            print(f"Party PIN: {pin}", file=self.out)
        print("Press Ctrl+C to stop.\n", file=self.out, flush=True)
        self._live = True

    def status_line(self, status: PartyStatus) -> None:
        if status.state != Phase.LIVE or not self._live:
            return
        several = len(status.channels) > 1
        for channel in status.channels if several else []:
            self.now_playing(channel.get("now_playing"), channel["name"])
        if not several:
            self.now_playing(status.now_playing)
        count = "…" if status.listeners is None else str(status.listeners)
        alive = sum(1 for w in status.workers if w.get("alive"))
        per = ""
        if several:
            per = " · ".join(
                f"{c['name']} {'…' if c.get('listeners') is None else c['listeners']}"
                for c in status.channels
            )
            per = f"  ({per})"
        line = f"Listeners: {count}{per}  (servers up: {alive}/{len(status.workers)})"
        if line == self._last:
            return
        self._last = line
        if self.tty:
            print(f"\r\033[K{line}", end="", file=self.out, flush=True)
        else:
            print(line, file=self.out, flush=True)

    def now_playing(self, track: dict | None, channel: str = "") -> None:
        """One line per track the guests hear (never a path: these are the phones' titles)."""
        if not track or track == self._tracks.get(channel):
            return
        self._tracks[channel] = track
        title = track.get("title") or track.get("label") or ""
        line = " — ".join(part for part in (title, track.get("artist") or "") if part)
        where = f" on {channel}" if channel else ""
        if line:
            self.event("info", f"♪ Now playing{where}: {line}")

    def event(self, level: str, message: str) -> None:
        prefix = {"error": "Error: ", "warning": "Note: "}.get(level, "")
        lead = "\r\033[K" if self.tty else ""
        print(f"{lead}{prefix}{message}", file=self.out, flush=True)
        self._last = ""

    def say(self, message: str) -> None:
        print(("\n" if self.tty else "") + message, file=self.out, flush=True)


async def serve(
    config: PartyConfig, spec: SourceSpec | list[Channel], console: Console
) -> int:
    loop = asyncio.get_running_loop()
    winloop.install(loop)
    party = PartyController(config)
    party.add_status_listener(console.status_line)
    party.add_event_listener(console.event)
    stopping = asyncio.Event()

    def graceful() -> None:
        console.say("Stopping the party… (press Ctrl+C again to force quit)")
        stopping.set()

    def force() -> None:
        console.say("Forced quit.")
        party.kill()
        os._exit(EXIT_FORCED)

    Interrupts(graceful, force).install(loop)
    try:
        status = await party.start(spec)
    except PartyError as exc:
        console.event("error", str(exc))
        return EXIT_ERROR
    console.banner(status)
    console.status_line(party.status)
    ended = asyncio.create_task(party.wait_closed())
    wanted = asyncio.create_task(stopping.wait())
    await asyncio.wait({ended, wanted}, return_when=asyncio.FIRST_COMPLETED)
    if wanted.done():
        await party.stop()
        console.say("Party stopped.")
        ended.cancel()
        return EXIT_OK
    wanted.cancel()
    return EXIT_ERROR  # the coordinator ended by itself: its reason was already printed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup("partystream", args.log_dir)
    try:
        spec = parse_channels(args)
        config = PartyConfig(
            name=args.name,
            port=args.port,
            workers=args.workers,
            host=args.host,
            public_host=args.public_host,
            live_lead_ms=args.live_delay_ms,
            log_dir=args.log_dir,
            pin=args.pin,
            max_listeners=args.max_listeners,
        )
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.getLogger(__name__).info("serving %s with %s", spec, config)
    return asyncio.run(serve(config, spec, Console()))
