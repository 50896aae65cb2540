"""How fast a party starts and how light it is when idle, side by side with the anchor.

.venv/bin/python -m bench.startup                  # everything below, ~4 min
.venv/bin/python -m bench.startup --only cli --runs 5

- tray (Xvfb + trayer, the real app): Start in the tray menu → QR code on screen, and
  Start → first audio at a phone (a listener that asks the front door as the page does,
  from the moment Start is clicked), with the party the app prepared at launch;
- cold: app launch with "start the party when Party Stream opens" → QR code on screen;
- idle: CPU and RSS over `--idle-seconds` of the tray app (with its prepared party) and of
  a running party nobody listens to;
- cli: `partystream serve FILE --workers 2` vs `sendspin serve FILE --workers 2`
  (sendspin 9.0.0 in its own venv, `--anchor`), launch → first audio chunk at a real
  Sendspin client, alternating runs.
Everything talks to 127.0.0.1 only and every wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.desktop import xsession
from tests.desktop.running_app import AppProcess
from tests.helpers import free_base_port, http_json
from tests.listener import Listener

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60.0


async def first_audio(front_port: int, since: float, timeout: float = TIMEOUT_S) -> float:
    """Seconds from `since` until a listener that joins like the page has its first chunk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            code, target = await asyncio.to_thread(
                http_json, f"http://127.0.0.1:{front_port}/api/join", 1.0
            )
            if code == 200:
                listener = await Listener(
                    f"ws://127.0.0.1:{target['port']}{target['path']}", keep_audio=False
                ).connect()
                try:
                    await listener.wait_chunks(1, timeout=deadline - time.monotonic())
                    return time.monotonic() - since
                finally:
                    await listener.close()
        await asyncio.sleep(0.05)
    raise TimeoutError("no audio")


async def direct_first_audio(url: str, since: float, timeout: float = TIMEOUT_S) -> float:
    """The same for a server without a front door: (re)connect to its first worker until a
    chunk arrives, the way a player retries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listener = Listener(url, keep_audio=False)
        try:
            await listener.connect(timeout=5)
            await listener.wait_chunks(1, timeout=5)
            return time.monotonic() - since
        except Exception:
            await asyncio.sleep(0.05)
        finally:
            await listener.close()
    raise TimeoutError("no audio")


def wait_qr_on_screen(x: xsession.XSession, shot: Path, port: int, since: float) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        x.screenshot(shot)
        if any(f":{port}/" in text for text in x.decode_qr(shot)):
            return time.monotonic() - since
        time.sleep(0.05)
    raise TimeoutError("no QR code on screen")


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def idle_figures(pid: int, seconds: float) -> tuple[float, float, int]:
    """(CPU % of one core, RSS MiB, processes) of `pid` and its descendants."""
    procs = tree(pid)
    cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
    time.sleep(seconds)
    procs = [p for p in procs if p.is_running()]
    cpu1 = sum(sum(p.cpu_times()[:2]) for p in procs)
    rss = sum(p.memory_info().rss for p in procs) / 2**20
    return 100 * (cpu1 - cpu0) / seconds, rss, len(procs)


def app_log(app: AppProcess, name: str) -> str:
    path = app.log_file.parent / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


async def tray_runs(runs: int, idle_s: float, tmp: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"start_to_qr": [], "start_to_audio": [], "cold_to_qr": []}
    x = xsession.start(tmp)
    try:
        for run in range(runs):
            port = free_base_port(3)
            app = AppProcess(tmp / f"tray{run}", platform="xcb", display=x.display)
            app.write_settings(port=port, workers=2)
            app.launch()
            try:
                wait_for(lambda a=app: x.tray_icon("Party Stream"), 30, "tray icon")
                wait_for(lambda a=app: "workers are warm" in app_log(a, "coordinator"), 60, "warm")
                if run == 0:
                    cpu, rss, n = idle_figures(app.proc.pid, idle_s)  # type: ignore[union-attr]
                    out["idle_tray"] = [cpu, rss, n]
                icon = x.tray_icon("Party Stream")
                assert icon is not None
                x.click(*icon.centre, button=3)
                x.wait_for("^Party Stream$", 10, min_size=100)
                clicked = time.monotonic()
                x.keys("Down", "Return")
                audio = asyncio.create_task(first_audio(port, clicked))
                qr = await asyncio.to_thread(wait_qr_on_screen, x, tmp / "s.png", port, clicked)
                out["start_to_qr"].append(qr)
                out["start_to_audio"].append(await audio)
                if run == 0:
                    await asyncio.sleep(3)
                    cpu, rss, n = idle_figures(app.proc.pid, idle_s)  # type: ignore[union-attr]
                    out["idle_party"] = [cpu, rss, n]
            finally:
                app.close()
            cold = AppProcess(tmp / f"cold{run}", platform="xcb", display=x.display)
            port = free_base_port(3)
            cold.write_settings(port=port, workers=2, start_on_launch=True)
            cold.launch()
            try:
                shot = tmp / "c.png"
                qr = await asyncio.to_thread(wait_qr_on_screen, x, shot, port, cold.launched_at)
                out["cold_to_qr"].append(qr)
            finally:
                cold.close()
    finally:
        x.close()
    return out


async def cli_runs(runs: int, anchor: str | None, song: Path, tmp: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"ours": [], "anchor": []}
    ours = [str(REPO / ".venv/bin/partystream"), "serve", str(song), "--workers", "2"]
    for _ in range(runs):
        for who in ("ours", "anchor") if anchor else ("ours",):
            port = free_base_port(3)
            if who == "ours":
                argv = [*ours, "--port", str(port), "--public-host", "127.0.0.1"]
                argv += ["--log-dir", str(tmp / "logs")]
            else:
                argv = [str(anchor), "serve", str(song), "--workers", "2", "--port", str(port)]
            began = time.monotonic()
            proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            try:
                if who == "ours":
                    out[who].append(await first_audio(port, began))
                else:  # no front door: its first worker listens on the base port
                    url = f"ws://127.0.0.1:{port}/sendspin"
                    out[who].append(await direct_first_audio(url, began))
            finally:
                end_server(proc)
    return out


def end_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server under test, bounded; kill anything it left behind."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()


def summary(values: list[float]) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    return f"median {med:.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def make_song(tmp: Path) -> Path:
    """A 30 s file of the demo music, so both servers decode the same thing."""
    import av

    from server.sources.demo import render

    pcm = render()[: 48_000 * 30]
    path = tmp / "song.flac"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=48_000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 48_000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=["tray", "cli"])
    parser.add_argument(
        "--anchor", default="/tmp/anchor/bin/sendspin", help="`sendspin` 9.0.0 (pip install)"
    )
    args = parser.parse_args()
    anchor = args.anchor if shutil.which(args.anchor) else None
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        tmp = Path(name)
        if args.only in (None, "cli"):
            cli = await cli_runs(args.runs, anchor, make_song(tmp), tmp)
            results["cli"] = cli
            print("\nlaunch → first audio at a client, `serve FILE --workers 2`:")
            print(f"  partystream serve : {summary(cli['ours'])}")
            print(f"  sendspin serve    : {summary(cli['anchor']) if anchor else 'not installed'}")
            if anchor and cli["ours"] and cli["anchor"]:
                ratio = statistics.median(cli["ours"]) / statistics.median(cli["anchor"])
                print(f"  ours / anchor     : {ratio:.2f}")
        if args.only in (None, "tray"):
            if missing := xsession.missing_tools():
                print(f"tray figures skipped: missing {missing}")
            else:
                tray = await tray_runs(args.runs, args.idle_seconds, tmp)
                results["tray"] = tray
                print("\ntray app under Xvfb (party prepared at launch, 2 workers, demo):")
                print(f"  Start → QR code on screen       : {summary(tray['start_to_qr'])}")
                print(f"  Start → first audio at a phone  : {summary(tray['start_to_audio'])}")
                print(f"  launch (start on launch) → QR   : {summary(tray['cold_to_qr'])}")
                for key, label in (("idle_tray", "tray app idle, party prepared"),
                                   ("idle_party", "party running, nobody listening")):  # fmt: skip
                    cpu, rss, n = tray[key]
                    print(f"  {label:32}: {cpu:.2f} % CPU, {rss:.0f} MiB RSS in {n:.0f} processes")
    print("\n" + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
