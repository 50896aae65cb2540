"""Build Party Stream's installers: one command per platform, run on that platform.

    python packaging/build.py linux    # dist/partystream/  (+ a .tar.gz with --archive)
    python packaging/build.py windows  # dist/PartyStream-<version>-windows-x64-setup.exe
    python packaging/build.py macos    # dist/PartyStream-<version>-macos-<arch>.dmg

Options: --dist DIR and --work DIR (default dist/ and build/ in the checkout),
--no-installer (frozen app only), --archive (Linux: also a .tar.gz), --dry-run (print the
commands of the platform steps instead of running them; works on any OS).

Needs the project installed with its `package` extra (`pip install -e ".[package]"`):
PyInstaller and Pillow. Windows also needs Inno Setup 6 (ISCC.exe on PATH, or set ISCC);
macOS uses hdiutil/codesign/xcrun, which ship with the OS and Xcode's command line tools.
Nothing is downloaded while building.

Signing is optional and driven by environment variables; when they are unset the step is
skipped with a note, so a build without certificates still produces working installers:
- macOS: MACOS_SIGN_IDENTITY ("Developer ID Application: ..."; the certificate must be in
  the keychain) signs the app (PyInstaller does it: hardened runtime,
  packaging/macos/entitlements.plist) and the .dmg. Notarisation additionally needs
  MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID and MACOS_NOTARY_PASSWORD (an app-specific
  password); the ticket is then stapled to the .dmg.
- Windows: WINDOWS_CERT_PFX (path to a .pfx) and WINDOWS_CERT_PASSWORD sign PartyStream.exe,
  the installer and its uninstaller with signtool (WINDOWS_TIMESTAMP_URL overrides the
  timestamp server).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import buildinfo
from buildinfo import HERE, REPO

PLATFORMS = ("linux", "windows", "macos")
DEFAULT_TIMESTAMP_URL = "http://timestamp.digicert.com"


def host_platform() -> str:
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


class Runner:
    """Runs (or, with dry_run, only prints) the external commands of a build."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.commands: list[list[str]] = []

    def note(self, message: str) -> None:
        print(f"[build] {message}", flush=True)

    def run(self, cmd: list[str], *, secret: str | None = None, cwd: Path | None = None) -> None:
        self.commands.append(cmd)
        shown = " ".join(shlex.quote(c) for c in cmd)
        if secret:
            shown = shown.replace(secret, "***")
        print(f"[build] $ {shown}", flush=True)
        if not self.dry_run:
            subprocess.run(cmd, check=True, cwd=cwd)


# -- steps shared by every platform ------------------------------------------------------------
def make_icons(runner: Runner, work: Path) -> Path:
    icon_dir = work / "icons"
    # A separate process: it starts a (headless) Qt application to render the SVG.
    runner.run([sys.executable, str(HERE / "icons.py"), str(icon_dir)])
    return icon_dir


def freeze(runner: Runner, dist: Path, work: Path, icon_dir: Path) -> None:
    cmd = [
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
        "--distpath", str(dist), "--workpath", str(work / "pyinstaller"),
        str(HERE / "partystream.spec"), "--", "--icon-dir", str(icon_dir),
    ]  # fmt: skip
    identity = os.environ.get("MACOS_SIGN_IDENTITY")
    if host_platform() == "macos" and identity:
        cmd += ["--codesign-identity", identity]
    runner.run(cmd)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# -- Linux -------------------------------------------------------------------------------------
def finish_linux(runner: Runner, dist: Path, version: str, icon_dir: Path, archive: bool) -> Path:
    bundle = dist / buildinfo.exe_name("linux")
    # pyenv-built interpreters carry ~25 MB of debug info in libpython; drop just that.
    strip = shutil.which("strip")
    for lib in sorted((bundle / "_internal").glob("libpython3*.so*")):
        if strip:
            runner.run([strip, "--strip-debug", str(lib)])
    if not runner.dry_run:
        shutil.copy2(icon_dir / "partystream.png", bundle / "partystream.png")
    if not archive:
        return bundle
    out = dist / f"PartyStream-{version}-linux-{platform.machine()}.tar.gz"
    runner.note(f"archiving {bundle.name}/ -> {out.name}")
    if not runner.dry_run:
        with tarfile.open(out, "w:gz", compresslevel=6) as tar:
            tar.add(bundle, arcname=bundle.name)
    return out


# -- Windows -----------------------------------------------------------------------------------
def find_iscc() -> str:
    candidates = [
        os.environ.get("ISCC", ""),
        shutil.which("ISCC") or "",
        shutil.which("iscc") or "",
        r"C:\Program Files (x86)\Inno Setup 6\ISCC.exe",
        r"C:\Program Files\Inno Setup 6\ISCC.exe",
    ]
    for cand in candidates:
        if cand and Path(cand).is_file():
            return cand
    raise SystemExit("Inno Setup 6 not found: install it (choco install innosetup) or set ISCC.")


def windows_signing() -> tuple[list[str], str] | None:
    """signtool's arguments (file name goes last) and the secret to hide in logs, or None."""
    pfx, password = os.environ.get("WINDOWS_CERT_PFX"), os.environ.get("WINDOWS_CERT_PASSWORD")
    if not (pfx and password):
        return None
    stamp = os.environ.get("WINDOWS_TIMESTAMP_URL", DEFAULT_TIMESTAMP_URL)
    signtool = shutil.which("signtool") or "signtool.exe"
    args = [signtool, "sign", "/fd", "sha256", "/td", "sha256", "/tr", stamp]
    return [*args, "/f", pfx, "/p", password], password


def finish_windows(runner: Runner, dist: Path, version: str, icon_dir: Path) -> Path:
    app_dir = dist / buildinfo.exe_name("win32")
    signing = windows_signing()
    if signing:
        args, secret = signing
        runner.run([*args, str(app_dir / (buildinfo.exe_name("win32") + ".exe"))], secret=secret)
    else:
        runner.note("WINDOWS_CERT_PFX/WINDOWS_CERT_PASSWORD unset: installer is not signed")
    iscc = "ISCC.exe" if runner.dry_run else find_iscc()
    base = f"PartyStream-{version}-windows-x64-setup"
    cmd = [
        iscc, "/Qp",
        f"/DAppVersion={version}",
        f"/DAppNumericVersion={'.'.join(map(str, buildinfo.numeric_version(version)))}",
        f"/DSourceDir={app_dir}",
        f"/DIconFile={icon_dir / 'partystream.ico'}",
        f"/DOutputDir={dist}",
        f"/DOutputBase={base}",
        f"/DDefaultPort={buildinfo.DEFAULT_PORT}",
    ]  # fmt: skip
    secret = None
    if signing:
        args, secret = signing
        # Inno Setup signs the setup and the uninstaller it embeds; $f is the file to sign.
        sign_cmd = subprocess.list2cmdline(args) + " $f"
        cmd += [f"/Spssign={sign_cmd}", "/DSign=1"]
    cmd.append(str(HERE / "windows" / "partystream.iss"))
    runner.run(cmd, secret=secret)
    return dist / f"{base}.exe"


# -- macOS -------------------------------------------------------------------------------------
def finish_macos(runner: Runner, dist: Path, version: str, work: Path) -> Path:
    app = dist / f"{buildinfo.APP_NAME}.app"
    identity = os.environ.get("MACOS_SIGN_IDENTITY")
    if identity:
        # PyInstaller already signed every binary and then the bundle (hardened runtime,
        # our entitlements, secure timestamp): check the seal before packing it.
        runner.run(["codesign", "--verify", "--deep", "--strict", "--verbose=2", str(app)])
    else:
        runner.note("MACOS_SIGN_IDENTITY unset: the app is ad-hoc signed only (not notarised)")

    # The .dmg: the app next to a link to /Applications, so people drag one onto the other.
    stage = work / "dmg"
    dmg = dist / f"PartyStream-{version}-macos-{platform.machine() or 'universal'}.dmg"
    if not runner.dry_run:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        runner.run(["ditto", str(app), str(stage / app.name)])  # keeps symlinks, xattrs
        (stage / "Applications").symlink_to("/Applications")
        dmg.unlink(missing_ok=True)
    runner.run([
        "hdiutil", "create", "-volname", buildinfo.APP_NAME, "-srcfolder", str(stage),
        "-fs", "HFS+", "-format", "UDZO", "-imagekey", "zlib-level=9", "-ov", str(dmg),
    ])  # fmt: skip
    if identity:
        runner.run(["codesign", "--force", "--timestamp", "--sign", identity, str(dmg)])
    notary = [os.environ.get(k) for k in
              ("MACOS_NOTARY_APPLE_ID", "MACOS_NOTARY_TEAM_ID", "MACOS_NOTARY_PASSWORD")]
    if identity and all(notary):
        apple_id, team, password = notary
        runner.run([
            "xcrun", "notarytool", "submit", str(dmg), "--apple-id", apple_id,
            "--team-id", team, "--password", password, "--wait",
        ], secret=password)  # fmt: skip
        runner.run(["xcrun", "stapler", "staple", str(dmg)])
    else:
        runner.note("notarisation skipped (needs MACOS_SIGN_IDENTITY and MACOS_NOTARY_*)")
    return dmg


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packaging/build.py", description=__doc__.split("\n")[0])
    parser.add_argument("platform", nargs="?", choices=PLATFORMS, default=host_platform())
    parser.add_argument("--dist", type=Path, default=REPO / "dist")
    parser.add_argument("--work", type=Path, default=REPO / "build")
    parser.add_argument("--no-installer", action="store_true", help="only the frozen app")
    parser.add_argument("--archive", action="store_true", help="Linux: also make a .tar.gz")
    parser.add_argument("--dry-run", action="store_true", help="print commands, run nothing")
    args = parser.parse_args(argv)
    if args.platform != host_platform() and not args.dry_run:
        parser.error(
            f"{args.platform} installers are built on {args.platform} "
            f"(PyInstaller does not cross-compile); this is {host_platform()}"
        )
    dist, work = args.dist.resolve(), args.work.resolve()
    version = buildinfo.read_version()
    runner = Runner(args.dry_run)
    runner.note(f"Party Stream {version} for {args.platform}: dist={dist} work={work}")
    started = time.monotonic()

    icon_dir = make_icons(runner, work)
    freeze(runner, dist, work, icon_dir)
    if args.platform == "linux":
        out = finish_linux(runner, dist, version, icon_dir, args.archive)
    elif args.no_installer:
        out = dist
    elif args.platform == "windows":
        out = finish_windows(runner, dist, version, icon_dir)
    else:
        out = finish_macos(runner, dist, version, work)

    elapsed = time.monotonic() - started
    if not args.dry_run:
        bundle = dist / (
            f"{buildinfo.APP_NAME}.app" if args.platform == "macos"
            else buildinfo.exe_name("linux" if args.platform == "linux" else "win32")
        )  # fmt: skip
        size = folder_size(bundle) / 1e6
        runner.note(f"frozen app: {bundle} ({size:.0f} MB)")
    runner.note(f"done in {elapsed:.0f} s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
