"""Which device to capture: system audio ("what you hear") and microphones, per platform.

Selection is pure functions over snapshots of the system (PortAudio's device list, the
PulseAudio/PipeWire sources, PyAudioWPatch's loopback devices), so every platform's logic is
unit-tested with fake lists on any OS. The functions at the bottom take the snapshots from
the real system; the ones for the tray (`list_microphones`, `system_audio_available`,
`refresh`) never raise and return in well under a second.

- Linux: capture goes through the ALSA `pulse` device; which source it records is chosen
  with `PULSE_SOURCE` (PipeWire's ALSA plugin reads `PIPEWIRE_NODE`), set only while the
  stream opens, because PortAudio cannot name individual PulseAudio sources.
- Windows: WASAPI loopback of the default output through the optional PyAudioWPatch
  package (sounddevice 0.5 has no loopback), else a "Stereo Mix" style input.
- macOS: a loopback driver such as BlackHole, or a clear note on what to install.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from server.audio_format import SAMPLE_RATE
from server.sources.base import SourceError, SourceSpec

log = logging.getLogger(__name__)

PACTL_TIMEOUT_S = 2.0
# ALSA devices that lead to the sound server, best first: only these honour PULSE_SOURCE.
LINUX_ROUTES = ("pulse", "default", "pipewire")
# Inputs that carry what the computer plays (drivers and Windows' own mixers), best first.
LOOPBACK_NAMES = (
    "blackhole",
    "loopback audio",
    "soundflower",
    "background music",
    "cable output",
    "stereo mix",
    "what u hear",
    "wave out mix",
)

NO_PORTAUDIO = (
    "Audio capture needs the PortAudio library, which is missing "
    "(on Debian/Ubuntu: sudo apt install libportaudio2)."
)
LINUX_NO_SERVER = (
    "System audio needs PulseAudio or PipeWire (with pipewire-pulse) and its `pactl` tool; "
    "neither answered."
)
LINUX_NO_ALSA_ROUTE = (
    "The sound server runs, but ALSA has no route to it. Install the ALSA PulseAudio plugin "
    "(Debian/Ubuntu: sudo apt install libasound2-plugins; Fedora: alsa-plugins-pulseaudio)."
)
WINDOWS_HOWTO = (
    "Capturing system audio on Windows needs the PyAudioWPatch package "
    '(pip install PyAudioWPatch), or the "Stereo Mix" recording device enabled in the '
    "Sound control panel."
)
MACOS_HOWTO = (
    "macOS cannot share what it plays without a loopback driver. Install the free BlackHole "
    "2ch (https://existential.audio/blackhole/ or `brew install blackhole-2ch`), then in "
    "Audio MIDI Setup create a Multi-Output Device with your speakers and BlackHole, and "
    "choose it as the sound output. Party Stream then records from BlackHole."
)


@dataclass(frozen=True)
class Device:
    """An input for the tray menu; `name` is what goes into SourceSpec.device."""

    name: str
    is_default: bool = False


@dataclass(frozen=True)
class CapturePlan:
    """Everything needed to open one capture stream; compared to tell devices apart."""

    label: str  # for people: "Monitor of Speakers", "USB Microphone"
    backend: Literal["portaudio", "wasapi"] = "portaudio"
    device: int | None = None  # PortAudio (or PyAudio) device index
    env: tuple[tuple[str, str], ...] = ()  # sound-server variables read when the stream opens
    channels: int = 2
    rate: int = SAMPLE_RATE
    gaps_are_silence: bool = False  # WASAPI loopback sends nothing while nothing plays
    pulse_source: int | None = None  # index of the PulseAudio source we must be recording
    pulse_sink: str | None = None  # system audio: the sink whose monitor that is


# -- snapshots -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PortAudioView:
    """PortAudio's devices as sounddevice reports them (dicts with index, name, hostapi…)."""

    devices: tuple[Mapping[str, Any], ...] = ()
    default_input: int = -1
    error: str | None = None  # PortAudio unusable (library missing)

    def inputs(self) -> list[Mapping[str, Any]]:
        """Inputs of one host API (the default input's), so Windows doesn't list a mic 4×."""
        ins = [d for d in self.devices if d.get("max_input_channels", 0) > 0]
        if 0 <= self.default_input < len(self.devices):
            api = self.devices[self.default_input].get("hostapi")
            return [d for d in ins if d.get("hostapi") == api]
        return ins

    def find(self, name: str) -> Mapping[str, Any] | None:
        return next((d for d in self.inputs() if d["name"] == name), None)


@dataclass(frozen=True)
class PulseSource:
    name: str
    description: str
    monitor_of: str | None = None  # the sink this source monitors, for monitors
    index: int | None = None  # the server never reuses an index: a new device, a new index


@dataclass(frozen=True)
class PulseView:
    default_sink: str
    default_source: str
    sources: tuple[PulseSource, ...] = ()

    def find(self, name: str) -> PulseSource | None:
        return next((s for s in self.sources if name in (s.description, s.name)), None)


@dataclass(frozen=True)
class WasapiView:
    """The default output and the loopback inputs PyAudioWPatch offers."""

    default_output: Mapping[str, Any] | None
    loopbacks: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None


# -- selection (pure) ------------------------------------------------------------------------
def _pulse_env(source: PulseSource) -> tuple[tuple[str, str], ...]:
    # PipeWire records a sink's monitor when asked to capture the sink itself; without
    # dont-reconnect it would move us to the default input (a microphone!) on unplug.
    props = "node.dont-reconnect = true"
    if source.monitor_of:
        props += " stream.capture.sink = true"
    return (
        ("PULSE_SOURCE", source.name),
        ("PIPEWIRE_NODE", source.monitor_of or source.name),
        ("PIPEWIRE_ALSA", "{ " + props + " }"),
    )


def _pulse_plan(source: PulseSource, route: int, system: bool = False) -> CapturePlan:
    return CapturePlan(
        label=source.description,
        device=route,
        env=_pulse_env(source),
        pulse_source=source.index,
        pulse_sink=source.monitor_of if system else None,
    )


def _linux_route(pa: PortAudioView) -> Mapping[str, Any]:
    if pa.error:
        raise SourceError(pa.error)
    for name in LINUX_ROUTES:
        if (device := pa.find(name)) is not None:
            return device
    raise SourceError(LINUX_NO_ALSA_ROUTE)


def _portaudio_plan(device: Mapping[str, Any], label: str | None = None) -> CapturePlan:
    return CapturePlan(
        label=label or str(device["name"]),
        device=int(device["index"]),
        channels=max(1, min(2, int(device["max_input_channels"]))),
    )


def _loopback_input(pa: PortAudioView) -> Mapping[str, Any] | None:
    for wanted in LOOPBACK_NAMES:
        for device in pa.inputs():
            if wanted in str(device["name"]).lower():
                return device
    return None


def system_plan(
    platform: str,
    pa: PortAudioView,
    pulse: PulseView | None = None,
    wasapi: WasapiView | None = None,
) -> CapturePlan:
    """What to record for "system audio" on `platform`; SourceError says what is missing."""
    if platform.startswith("linux"):
        if pulse is None:
            raise SourceError(LINUX_NO_SERVER)
        monitor = next((s for s in pulse.sources if s.monitor_of == pulse.default_sink), None)
        if monitor is None:
            raise SourceError(
                f"The sound output {pulse.default_sink!r} offers no monitor to record from."
            )
        return _pulse_plan(monitor, int(_linux_route(pa)["index"]), system=True)
    if platform == "win32":
        if wasapi is not None and wasapi.default_output is not None:
            plan = _wasapi_plan(wasapi)
            if plan is not None:
                return plan
        if not pa.error and (device := _loopback_input(pa)) is not None:
            return _portaudio_plan(device)
        reason = f" ({wasapi.error})" if wasapi is not None and wasapi.error else ""
        raise SourceError(WINDOWS_HOWTO + reason)
    if pa.error:
        raise SourceError(pa.error)
    if (device := _loopback_input(pa)) is not None:
        return _portaudio_plan(device)
    if platform == "darwin":
        raise SourceError(MACOS_HOWTO)
    raise SourceError(f"System audio capture is not supported on {platform}.")


def _wasapi_plan(view: WasapiView) -> CapturePlan | None:
    out = view.default_output
    assert out is not None
    if out.get("isLoopbackDevice"):
        loopback: Mapping[str, Any] | None = out
    else:  # PyAudioWPatch names the loopback twin "<output name> [Loopback]"
        loopback = next((lb for lb in view.loopbacks if str(out["name"]) in str(lb["name"])), None)
    if loopback is None:
        return None
    return CapturePlan(
        label=str(out["name"]).removesuffix(" [Loopback]"),
        backend="wasapi",
        device=int(loopback["index"]),
        channels=max(1, int(loopback["maxInputChannels"])),
        rate=int(loopback["defaultSampleRate"]),
        gaps_are_silence=True,
    )


def microphones(platform: str, pa: PortAudioView, pulse: PulseView | None = None) -> list[Device]:
    """Inputs a host may pick as "microphone / line-in", the default one marked."""
    if platform.startswith("linux") and pulse is not None and not pa.error:
        with contextlib.suppress(SourceError):
            _linux_route(pa)
            return [
                Device(s.description, s.name == pulse.default_source)
                for s in pulse.sources
                if not s.monitor_of
            ]
    if pa.error:
        return []
    return [Device(str(d["name"]), d["index"] == pa.default_input) for d in pa.inputs()]


def mic_plan(
    name: str | None, platform: str, pa: PortAudioView, pulse: PulseView | None = None
) -> tuple[CapturePlan, str | None]:
    """The input called `name` (None: the default one), and a note when it had to differ."""
    missing = f"The input {name!r} is not connected; using the default input instead."
    if platform.startswith("linux") and pulse is not None and not pa.error:
        with contextlib.suppress(SourceError):
            route = int(_linux_route(pa)["index"])
            source = pulse.find(name) if name else None
            if source is not None:
                return _pulse_plan(source, route), None
            default = pulse.find(pulse.default_source)
            label = default.description if default else "Default input"
            return CapturePlan(label=label, device=route), missing if name else None
    if pa.error:
        raise SourceError(pa.error)
    inputs = pa.inputs()
    if not inputs:
        raise SourceError("No microphone or line-in found. Plug one in and try again.")
    chosen = pa.find(name) if name else None
    if chosen is not None:
        return _portaudio_plan(chosen), None
    default = next((d for d in inputs if d["index"] == pa.default_input), inputs[0])
    return _portaudio_plan(default), missing if name else None


# -- snapshots of the real system ------------------------------------------------------------
_PA_LOCK = threading.RLock()  # PortAudio calls, and the env changes around opening a stream
_open_streams = 0


def _sounddevice() -> ModuleType:
    import sounddevice  # OSError when libportaudio is missing

    return sounddevice


def portaudio_view() -> PortAudioView:
    try:
        with _PA_LOCK:
            sd = _sounddevice()
            devices = tuple(dict(d) for d in sd.query_devices())
            default_input = int(sd.default.device[0])
    except OSError:
        return PortAudioView(error=NO_PORTAUDIO)
    return PortAudioView(devices=devices, default_input=default_input)


def _pactl(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["pactl", *args],
            capture_output=True,
            text=True,
            timeout=PACTL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _monitored(source: Mapping[str, Any]) -> str | None:
    sink = source.get("monitor_source")  # pactl names the monitored sink here ("" if none)
    return sink if sink and sink != "n/a" else None


def parse_pulse(info_json: str, sources_json: str) -> PulseView:
    """PulseView from `pactl -f json info` and `pactl -f json list sources`."""
    info = json.loads(info_json)
    sources = tuple(
        PulseSource(s["name"], s.get("description") or s["name"], _monitored(s), s.get("index"))
        for s in json.loads(sources_json)
    )
    return PulseView(
        info.get("default_sink_name", ""), info.get("default_source_name", ""), sources
    )


def parse_pulse_text(info: str, short_sources: str) -> PulseView:
    """PulseView from plain `pactl info` / `pactl list short sources` (pactl < 16)."""
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    sources = []
    for line in short_sources.splitlines():
        parts = line.split("\t")
        if len(parts) > 1:
            name = parts[1]
            monitor_of = name.removesuffix(".monitor") if name.endswith(".monitor") else None
            sources.append(PulseSource(name, name, monitor_of, int(parts[0])))
    return PulseView(
        fields.get("Default Sink", ""), fields.get("Default Source", ""), tuple(sources)
    )


def pulse_view() -> PulseView | None:
    """The sound server's sources, or None when no PulseAudio/PipeWire answers."""
    info, sources = _pactl("-f", "json", "info"), _pactl("-f", "json", "list", "sources")
    if info and sources:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            return parse_pulse(info, sources)
    info, sources = _pactl("info"), _pactl("list", "short", "sources")
    if info is None or sources is None:
        return None
    return parse_pulse_text(info, sources)


WATCH_PROPERTY = "partystream.capture"  # tags our recording stream (via PULSE_PROP)


def pulse_drift(
    plan: CapturePlan, token: str, outputs: Iterable[Mapping[str, Any]], default_sink: str | None
) -> str | None:
    """Why the stream tagged `token` no longer records what `plan` meant (None: all fine).

    PulseAudio moves a stream whose device vanished to the default input, often the
    microphone: that must not go on silently, least of all for system audio.
    """
    ours = next((o for o in outputs if o.get("properties", {}).get(WATCH_PROPERTY) == token), None)
    if ours is None:  # not listed (yet): if it died, the stall check notices
        return None
    if plan.pulse_source is not None and ours.get("source") != plan.pulse_source:
        return "it was disconnected"
    if plan.pulse_sink and default_sink and default_sink != plan.pulse_sink:
        return "the sound output changed"
    return None


def pulse_drift_now(plan: CapturePlan, token: str) -> str | None:
    """pulse_drift on the live server; None whenever pactl cannot tell (never raises)."""
    try:
        outputs = _pactl("-f", "json", "list", "source-outputs")
        if outputs is None:
            return None
        sink = _pactl("get-default-sink") if plan.pulse_sink else None
        return pulse_drift(plan, token, json.loads(outputs), sink.strip() if sink else None)
    except (ValueError, TypeError, AttributeError):
        return None


def wasapi_view(module: Any = None) -> WasapiView:
    """Ask PyAudioWPatch (imported lazily: Windows-only wheels) for the loopback devices."""
    try:
        pa_mod = module or importlib.import_module("pyaudiowpatch")
    except ImportError:
        return WasapiView(None, error="PyAudioWPatch is not installed")
    try:
        pa = pa_mod.PyAudio()
    except Exception as exc:  # any driver failure means "not available"
        return WasapiView(None, error=f"WASAPI: {exc}")
    try:
        info = pa.get_host_api_info_by_type(pa_mod.paWASAPI)
        output = pa.get_device_info_by_index(info["defaultOutputDevice"])
        loopbacks = tuple(pa.get_loopback_device_info_generator())
        return WasapiView(output, loopbacks)
    except Exception as exc:  # no WASAPI output: not available
        return WasapiView(None, error=f"WASAPI: {exc}")
    finally:
        with contextlib.suppress(Exception):
            pa.terminate()


def refresh() -> bool:
    """Re-scan PortAudio's devices (it lists them once, at start). False while a stream of
    this process is open: re-initialising PortAudio would break it."""
    try:
        with _PA_LOCK:
            if _open_streams:
                return False
            sd = _sounddevice()
            sd._terminate()
            sd._initialize()
            return True
    except Exception:  # a stale list is better than a crash
        log.debug("PortAudio refresh failed", exc_info=True)
        return False


@contextlib.contextmanager
def opening_stream(env: Iterable[tuple[str, str]]) -> Iterator[None]:
    """Hold PortAudio still and set the sound-server variables while a stream opens.

    The ALSA pulse/pipewire plugins read them when the device is opened, so they are
    restored right after and never leak to the rest of the process.
    """
    env = tuple(env)
    with _PA_LOCK:
        saved = {key: os.environ.get(key) for key, _ in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def stream_count(delta: int) -> None:
    """Streams of this process open now (refresh waits until there are none)."""
    global _open_streams
    with _PA_LOCK:
        _open_streams = max(0, _open_streams + delta)


def resolve(spec: SourceSpec) -> tuple[CapturePlan, str | None]:
    """The plan for a "system" or "mic" spec on this machine, and a note for the host.

    Blocking (pactl, PortAudio): call it off the event loop. Raises SourceError.
    """
    refresh()
    pa = portaudio_view()
    linux = sys.platform.startswith("linux")
    pulse = pulse_view() if linux else None
    if spec.kind == "system":
        wasapi = wasapi_view() if sys.platform == "win32" else None
        return system_plan(sys.platform, pa, pulse, wasapi), None
    if spec.kind == "mic":
        return mic_plan(spec.device, sys.platform, pa, pulse)
    raise SourceError(f"Not a capture source: {spec.kind!r}")


# -- for the tray ----------------------------------------------------------------------------
def list_microphones() -> list[Device]:
    """Inputs for the tray's menu (default marked), freshly scanned (a USB mic plugged in a
    minute ago is listed); [] when none or on any error. ~0.1 s: call it off the GUI thread."""
    try:
        refresh()
        linux = sys.platform.startswith("linux")
        return microphones(sys.platform, portaudio_view(), pulse_view() if linux else None)
    except Exception:  # a menu must open even if the audio stack is broken
        log.warning("listing inputs failed", exc_info=True)
        return []



def system_audio_available() -> tuple[bool, str]:
    """(can we capture "what you hear" here, an explanation for people)."""
    try:
        plan, _ = resolve(SourceSpec("system"))
    except SourceError as exc:
        return False, str(exc)
    except Exception as exc:  # the tray shows the reason instead of crashing
        log.warning("checking system audio failed", exc_info=True)
        return False, f"System audio is unavailable: {exc}"
    return True, f"Records what this computer plays ({plan.label})."
