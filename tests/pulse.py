"""A private PulseAudio server with a null sink, for tests that capture real audio.

It has its own runtime/state directories and socket; PULSE_SERVER points this test process
(and the processes it spawns, e.g. a party's coordinator) at it, never at the machine's own
server. Started and killed with timeouts. Tests use it through the `pulse` fixture:

    from tests.pulse import pulse_fixture, pulse_server_fixture  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

SINK = "vsink"
SINK_DESCRIPTION = "VirtualSink"
START_TIMEOUT_S = 10.0
PACTL_TIMEOUT_S = 5.0


class PulseServer:
    """One daemonised `pulseaudio`, owned by the test session.

    Daemonised, not a child of pytest: party tests assert that no child process outlives a
    party. It exits on its own after IDLE_EXIT_S without clients (so a killed test run
    leaves nothing behind for long); `ensure_running()` brings it back between tests.
    """

    IDLE_EXIT_S = 120

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "native"
        self.pid: int | None = None

    @property
    def client_env(self) -> dict[str, str]:
        """Variables that send every PulseAudio client (and ALSA's pulse plugin) here."""
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.root / "runtime"),
            "PULSE_STATE_PATH": str(self.root / "state"),
            "PULSE_COOKIE": str(self.root / "cookie"),
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
        }

    def start(self) -> None:
        for sub in ("runtime", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "client.conf").write_text("autospawn = no\n")
        script = self.root / "default.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={SINK} rate=48000 norewinds=1 "
            f"sink_properties=device.description={SINK_DESCRIPTION}\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SINK}.monitor\n"
        )
        env = {**os.environ, **self.client_env, "HOME": str(self.root / "home")}
        env.pop("PULSE_SERVER")
        # --daemonize=yes returns once the daemon is up (or failed to start).
        done = subprocess.run(
            [
                "pulseaudio", "-n", "-F", str(script), "--daemonize=yes", "--system=false",
                f"--exit-idle-time={self.IDLE_EXIT_S}", "--use-pid-file=yes",
                "--disable-shm=yes", f"--log-target=file:{self.root / 'pulse.log'}",
            ],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=START_TIMEOUT_S, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pulseaudio failed ({done.returncode}): {self.log()}")
        self.pid = int((self.root / "runtime" / "pid").read_text().split()[0])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._pactl_ok("info"):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pulseaudio did not answer in {START_TIMEOUT_S} s: {self.log()}")

    def ensure_running(self) -> None:
        if not self._pactl_ok("info"):
            self.stop()
            self.start()

    def log(self) -> str:
        path = self.root / "pulse.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _ours(self) -> psutil.Process | None:
        """Our daemon, if it still runs (never another process that got its pid)."""
        try:
            proc = psutil.Process(self.pid) if self.pid else None
            return proc if proc and proc.name() == "pulseaudio" else None
        except psutil.NoSuchProcess:
            return None

    def stop(self) -> None:
        proc = self._ours()
        self.pid = None
        if proc is None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
            try:
                proc.wait(5)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    # -- control -------------------------------------------------------------------------
    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args], env={**os.environ, **self.client_env}, capture_output=True,
            text=True, timeout=PACTL_TIMEOUT_S, check=False,
        )  # fmt: skip

    def _pactl_ok(self, *args: str) -> bool:
        try:
            return self._run(*args).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def pactl(self, *args: str) -> str:
        done = self._run(*args)
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def add_sink(self, name: str, description: str) -> int:
        """A second null sink (a "USB headset" to unplug); returns its module id."""
        return int(
            self.pactl(
                "load-module", "module-null-sink", f"sink_name={name}", "rate=48000",
                f"sink_properties='device.description=\"{description}\"'",
            )
        )  # fmt: skip

    def add_mic(self, name: str, description: str, master: str) -> int:
        """A source that is not a monitor (a "microphone") fed by `master`."""
        return int(
            self.pactl(
                "load-module", "module-remap-source", f"master={master}",
                f"source_name={name}", f"source_properties='device.description=\"{description}\"'",
            )
        )  # fmt: skip

    def unload(self, module: int) -> None:
        self.pactl("unload-module", str(module))

    def reset_defaults(self) -> None:
        self.pactl("set-default-sink", SINK)
        self.pactl("set-default-source", f"{SINK}.monitor")

    def play(self, path: Path, sink: str = SINK) -> subprocess.Popen[bytes]:
        """Start playing a WAV file into `sink`; the caller waits for it.

        A 1 s buffer: with 20 or even 100 ms paplay itself sometimes underruns on a busy
        2-core machine (the sink then inserts silence into what it plays, which no capture
        could fix); the first sample still plays at once."""
        return subprocess.Popen(
            ["paplay", "--latency-msec=1000", "-d", sink, str(path)],
            env={**os.environ, **self.client_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def write_wav(path: Path, samples: np.ndarray, rate: int = 48_000) -> Path:
    """Write float samples in -1..1 (mono) as a 16-bit stereo WAV."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(pcm[:, None], 2, axis=1).tobytes())
    return path


def tone_sequence(freqs: tuple[float, ...], each_s: float, rate: int = 48_000) -> np.ndarray:
    """Consecutive sine tones at half scale with 5 ms fades (no clicks between them)."""
    n = int(each_s * rate)
    t = np.arange(n) / rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    return np.concatenate([0.5 * np.sin(2 * np.pi * f * t) * fade for f in freqs])


@pytest.fixture(scope="session", name="pulse_server")
def pulse_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """The session's private PulseAudio, its variables set in this process's environment."""
    if shutil.which("pulseaudio") is None:
        pytest.skip("the `pulseaudio` binary is missing (apt-get install pulseaudio)")
    for tool in ("pactl", "paplay"):
        assert shutil.which(tool), f"{tool} is missing (apt-get install pulseaudio-utils)"
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in server.client_env.items():
                patch.setenv(key, value)
            yield server
    finally:
        server.stop()


@pytest.fixture(name="pulse")
def pulse_fixture(pulse_server: PulseServer) -> Iterator[PulseServer]:
    """The private server with its null sink as default output and input, before and after."""
    pulse_server.ensure_running()
    pulse_server.reset_defaults()
    yield pulse_server
    pulse_server.reset_defaults()
