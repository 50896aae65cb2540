"""Installers: the frozen Linux app hosts a real party; installer recipes are well-formed.

Fast tests check what cannot run here (Windows and macOS installers) as far as this machine
allows: the version's single source, Info.plist and entitlements (plistlib), the Inno Setup
script's structure, the build's platform steps (dry run), the CI workflow, the icons.

The `slow` tests build the Linux one-folder bundle once per session from a copy of the
checkout (the files git would commit; nothing ignored, so no node_modules, build/ or venv)
with the one documented command, then run the frozen executable itself:
`serve --demo` with a real Sendspin client on every worker, SIGTERM / SIGINT / SIGKILL with
no process left behind, and the GUI offscreen. Set PARTYSTREAM_FROZEN_APP=<bundle folder> to
test an existing bundle instead of building one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import plistlib
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from tests.helpers import eventually, free_base_port, http_json, pids_alive
from tests.listener import Listener
from tests.processes import Running

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
ISS = PACKAGING / "windows" / "partystream.iss"
WORKFLOW = REPO / ".github" / "workflows" / "installers.yml"
ARTIFACTS = REPO / "test-artifacts" / "packaging"
BUILD_TIMEOUT = 1800  # a cold build takes ~1.5-3 min on 2 cores; allow for a busy machine
START_TIMEOUT = 90


def _load_buildinfo() -> ModuleType:
    # packaging/ is not a Python package (a `packaging` package would shadow the PyPI one).
    path = PACKAGING / "buildinfo.py"
    spec = importlib.util.spec_from_file_location("partystream_buildinfo", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


buildinfo = _load_buildinfo()


def pyproject_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]["version"]


# -- version, names -----------------------------------------------------------------------------
def test_version_comes_only_from_pyproject() -> None:
    version = pyproject_version()
    assert buildinfo.read_version() == version
    # No installer file repeats it (it would go stale): they all get it from build.py.
    for path in (ISS, WORKFLOW, PACKAGING / "partystream.spec", PACKAGING / "build.py"):
        assert not re.search(rf"(?<![\d.]){re.escape(version)}(?![\d.])", path.read_text()), path


@pytest.mark.parametrize(
    ("version", "numbers"),
    [("0.1.0", (0, 1, 0, 0)), ("1.2", (1, 2, 0, 0)), ("2.10.3rc1", (2, 10, 3, 0)),
     ("1.2.3.dev4", (1, 2, 3, 0)), ("3.0.0.post2", (3, 0, 0, 0))],
)  # fmt: skip
def test_numeric_version_for_windows_and_macos(version: str, numbers: tuple[int, ...]) -> None:
    assert buildinfo.numeric_version(version) == numbers


def test_default_port_matches_the_server() -> None:
    from server.config import DEFAULT_PORT

    assert buildinfo.DEFAULT_PORT == DEFAULT_PORT


def test_dist_info_answers_importlib_metadata(tmp_path: Path) -> None:
    import importlib.metadata

    dist_info = buildinfo.write_dist_info(tmp_path)
    dist = importlib.metadata.PathDistribution(dist_info)
    assert dist.metadata["Name"] == "partystream"
    assert dist.version == pyproject_version()
    found = list(importlib.metadata.distributions(name="partystream", path=[str(tmp_path)]))
    assert [d.version for d in found] == [pyproject_version()]


def test_windows_version_resource_is_valid_python() -> None:
    text = buildinfo.windows_version_info("1.2.3")
    assert "filevers=(1, 2, 3, 0)" in text and "'ProductVersion', '1.2.3'" in text
    compile(text, "version_info.txt", "eval")  # PyInstaller eval()s this file


# -- macOS ---------------------------------------------------------------------------------------
def test_info_plist_is_valid_and_tray_only() -> None:
    info = buildinfo.info_plist(pyproject_version())
    for fmt in (plistlib.FMT_XML, plistlib.FMT_BINARY):
        assert plistlib.loads(plistlib.dumps(info, fmt=fmt)) == info
    assert info["LSUIElement"] is True  # menu-bar only: no Dock icon (children included)
    assert len(info["NSMicrophoneUsageDescription"]) > 20
    assert info["NSLocalNetworkUsageDescription"]
    assert re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+){2,}", info["CFBundleIdentifier"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["CFBundleShortVersionString"])
    assert info["CFBundleVersion"] == pyproject_version()
    assert info["CFBundlePackageType"] == "APPL"
    assert all(isinstance(k, str) and k for k in info)


def test_entitlements_allow_microphone_and_nothing_sandboxed() -> None:
    with (PACKAGING / "macos" / "entitlements.plist").open("rb") as fh:
        ent = plistlib.load(fh)
    assert ent["com.apple.security.device.audio-input"] is True
    assert "com.apple.security.app-sandbox" not in ent
    assert all(value is True for value in ent.values())


def run_build_dry(platform: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("MACOS_", "WINDOWS_CERT", "WINDOWS_TIMESTAMP"))}  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(PACKAGING / "build.py"), platform, "--dry-run",
         "--dist", "/tmp/ps-dist", "--work", "/tmp/ps-work"],
        capture_output=True, text=True, timeout=60, env={**clean, **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_macos_build_steps_without_certificates_skip_signing() -> None:
    out = run_build_dry("macos")
    assert "icons.py" in out and "PyInstaller" in out and "partystream.spec" in out
    hdiutil = next(line for line in out.splitlines() if "hdiutil create" in line)
    assert "-srcfolder /tmp/ps-work/dmg" in hdiutil and "-format UDZO" in hdiutil
    assert re.search(r"PartyStream-[\d.]+-macos-\S+\.dmg", hdiutil)
    assert "codesign" not in out and "notarytool" not in out
    assert "MACOS_SIGN_IDENTITY unset" in out


def test_macos_build_steps_sign_and_notarise_when_configured() -> None:
    env = {
        "MACOS_SIGN_IDENTITY": "Developer ID Application: Example (TEAM123456)",
        "MACOS_NOTARY_APPLE_ID": "dev@example.org",
        "MACOS_NOTARY_TEAM_ID": "TEAM123456",
        "MACOS_NOTARY_PASSWORD": "abcd-efgh-ijkl-mnop",
    }
    out = run_build_dry("macos", env)
    assert "codesign --verify --deep --strict" in out
    assert re.search(r"codesign --force --timestamp --sign .*Example.*\.dmg", out)
    assert "xcrun notarytool submit" in out and "--wait" in out
    assert "xcrun stapler staple" in out
    assert env["MACOS_NOTARY_PASSWORD"] not in out  # secrets never reach the log
    steps = [line for line in out.splitlines() if "$ " in line]
    order = [i for i, s in enumerate(steps) for key in ("hdiutil", "notarytool", "stapler")
             if key in s]  # fmt: skip
    assert order == sorted(order)


# -- Windows -------------------------------------------------------------------------------------
ISS_SECTIONS = {
    "Setup", "Languages", "Tasks", "InstallDelete", "Files", "Icons", "Registry", "Run",
    "UninstallRun", "UninstallDelete", "Code", "Dirs",
}  # fmt: skip
ISS_PARAMS = {
    "Languages": {"Name", "MessagesFile", "LicenseFile", "InfoBeforeFile", "InfoAfterFile"},
    "Tasks": {"Name", "Description", "GroupDescription", "Flags", "Components", "Check",
              "Languages", "MinVersion", "OnlyBelowVersion"},
    "InstallDelete": {"Type", "Name", "Tasks", "Check", "Components"},
    "UninstallDelete": {"Type", "Name", "Tasks", "Check", "Components"},
    "Files": {"Source", "DestDir", "DestName", "Flags", "Tasks", "Check", "Excludes",
              "Permissions", "Attribs", "Components"},
    "Icons": {"Name", "Filename", "Parameters", "WorkingDir", "IconFilename", "IconIndex",
              "Comment", "AppUserModelID", "Flags", "Tasks", "Check", "Components", "HotKey"},
    "Registry": {"Root", "Subkey", "ValueType", "ValueName", "ValueData", "Flags", "Tasks",
                 "Check", "Permissions", "Components"},
    "Run": {"Filename", "Parameters", "WorkingDir", "StatusMsg", "Description", "Flags",
            "Tasks", "Check", "RunOnceId", "Verb", "Components"},
    "UninstallRun": {"Filename", "Parameters", "WorkingDir", "StatusMsg", "Flags", "Tasks",
                     "Check", "RunOnceId", "Verb", "Components"},
}  # fmt: skip
ISS_REQUIRED = {
    "Languages": {"Name", "MessagesFile"}, "Tasks": {"Name", "Description"},
    "InstallDelete": {"Type", "Name"}, "UninstallDelete": {"Type", "Name"},
    "Files": {"Source", "DestDir"}, "Icons": {"Name", "Filename"},
    "Registry": {"Root", "Subkey"}, "Run": {"Filename"}, "UninstallRun": {"Filename"},
}  # fmt: skip
ISS_FLAGS = {
    "Tasks": {"unchecked", "exclusive", "checkedonce", "dontinheritcheck", "restart"},
    "Files": {"ignoreversion", "recursesubdirs", "createallsubdirs", "restartreplace",
              "uninsneveruninstall", "skipifsourcedoesntexist", "onlyifdoesntexist"},
    "Icons": {"createonlyiffileexists", "runminimized", "runmaximized", "preventpinning",
              "uninsneveruninstall", "excludefromshowinnewinstall", "useapppaths"},
    "Registry": {"uninsdeletevalue", "uninsdeletekey", "uninsdeletekeyifempty",
                 "createvalueifdoesntexist", "deletevalue", "deletekey", "dontcreatekey",
                 "preservestringtype", "noerror", "uninsclearvalue"},
    "Run": {"nowait", "postinstall", "skipifsilent", "skipifnotsilent", "runhidden",
            "runasoriginaluser", "runascurrentuser", "waituntilidle", "waituntilterminated",
            "shellexec", "unchecked", "runmaximized", "runminimized", "hidewizard",
            "skipifdoesntexist", "logoutput", "64bit", "32bit"},
    "UninstallRun": {"nowait", "runhidden", "runascurrentuser", "waituntilidle",
                     "waituntilterminated", "shellexec", "skipifdoesntexist", "logoutput",
                     "runmaximized", "runminimized", "64bit", "32bit"},
    "InstallDelete": set(), "UninstallDelete": set(), "Languages": set(),
}  # fmt: skip
ISS_SETUP_KEYS = {
    "AppId", "AppName", "AppVersion", "AppVerName", "AppPublisher", "VersionInfoVersion",
    "VersionInfoProductName", "DefaultDirName", "DefaultGroupName", "DisableProgramGroupPage",
    "PrivilegesRequired", "UsedUserAreasWarning", "ArchitecturesAllowed",
    "ArchitecturesInstallIn64BitMode", "MinVersion", "SetupIconFile", "UninstallDisplayIcon",
    "UninstallDisplayName", "OutputDir", "OutputBaseFilename", "Compression",
    "SolidCompression", "WizardStyle", "CloseApplications", "RestartApplications", "SignTool",
    "SignedUninstaller",
}  # fmt: skip


def split_iss_params(line: str) -> dict[str, str]:
    """'Name: "x"; Flags: a b' -> {'Name': 'x', 'Flags': 'a b'} ("" is a quote inside "...")."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        m = re.compile(r"\s*([A-Za-z0-9]+):\s*").match(line, pos)
        assert m, f"expected 'Param:' at {line[pos:]!r} in {line!r}"
        name, pos = m.group(1), m.end()
        if line.startswith('"', pos):
            end = pos + 1
            while True:
                end = line.index('"', end)  # ValueError = unterminated string
                if line.startswith('""', end):
                    end += 2
                    continue
                break
            value, pos = line[pos + 1 : end].replace('""', '"'), end + 1
        else:
            end = line.find(";", pos)
            end = len(line) if end < 0 else end
            value, pos = line[pos:end].strip(), end
        assert name not in params, f"{name} twice in {line!r}"
        params[name] = value
        rest = line[pos:].lstrip()
        assert not rest or rest.startswith(";"), f"junk {rest!r} in {line!r}"
        pos = len(line) - len(rest) + 1 if rest else len(line)
    return params


def parse_iss(text: str) -> tuple[dict[str, list], set[str], set[str]]:
    """Sections (entries), names #define'd in the script, names used as {#Name}."""
    sections: dict[str, list] = {}
    current = None
    defined: set[str] = set()
    depth = 0
    code: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            directive = line.split()[0]
            assert directive in {"#define", "#ifdef", "#ifndef", "#if", "#else", "#endif",
                                 "#error"}, line  # fmt: skip
            if directive.startswith("#if"):
                depth += 1
            elif directive == "#endif":
                depth -= 1
                assert depth >= 0, "unbalanced #endif"
            elif directive == "#define":
                defined.add(line.split()[1])
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            current = m.group(1)
            assert current in ISS_SECTIONS, f"unknown section [{current}]"
            assert current not in sections, f"[{current}] twice"
            sections[current] = []
            continue
        if current == "Code":
            code.append(raw)
            continue
        if not line or line.startswith(";"):
            continue
        assert current, f"text before the first section: {line!r}"
        if current == "Setup":
            key, sep, value = line.partition("=")
            assert sep and key.strip() in ISS_SETUP_KEYS, f"bad [Setup] line {line!r}"
            sections[current].append((key.strip(), value.strip()))
        else:
            sections[current].append(split_iss_params(line))
    assert depth == 0, "unbalanced #if/#endif"
    sections["Code"] = code
    used = set(re.findall(r"\{#(\w+)\}", text))
    return sections, defined, used


def test_inno_setup_script_is_well_formed() -> None:
    sections, defined, used = parse_iss(ISS.read_text(encoding="utf-8"))
    setup = dict(sections["Setup"])
    for key in ("AppId", "AppName", "AppVersion", "DefaultDirName", "OutputBaseFilename",
                "SetupIconFile", "UninstallDisplayIcon", "PrivilegesRequired"):  # fmt: skip
        assert setup.get(key), f"[Setup] {key} missing"
    # A literal "{" is written "{{" in Inno Setup: AppId must be the escaped GUID.
    assert re.fullmatch(r"\{\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", setup["AppId"])
    assert setup["PrivilegesRequired"] == "admin"  # the firewall rule needs it
    assert setup["AppVersion"] == "{#AppVersion}"

    tasks = {t["Name"] for t in sections["Tasks"]}
    assert {"desktopicon", "startup", "firewall"} <= tasks
    for section, entries in sections.items():
        if section in ("Setup", "Code"):
            continue
        for entry in entries:
            assert set(entry) <= ISS_PARAMS[section], (section, entry)
            assert ISS_REQUIRED[section] <= set(entry), (section, entry)
            flags = set(entry.get("Flags", "").split())
            assert flags <= ISS_FLAGS[section], (section, flags - ISS_FLAGS[section])
            words = re.findall(r"[\w\\]+", entry.get("Tasks", ""))
            assert {w for w in words if w not in ("and", "or", "not")} <= tasks, entry
            assert entry.get("Filename", "x").count("{") == entry.get("Filename", "").count("}")
        if section == "UninstallRun":
            assert all(e.get("RunOnceId") for e in entries), "every [UninstallRun] needs RunOnceId"

    # Start-menu entry, optional desktop shortcut; the uninstaller is Inno's own.
    icons = {e["Name"]: e for e in sections["Icons"]}
    assert "{autoprograms}\\{#AppName}" in icons
    assert icons["{autodesktop}\\{#AppName}"]["Tasks"] == "desktopicon"
    # Start at login: the very value desktop/autostart.py reads and writes, removed on uninstall.
    from desktop import autostart

    run_values = [e for e in sections["Registry"] if e["Subkey"].endswith("CurrentVersion\\Run")]
    assert run_values and all(e["Root"] == "HKCU" for e in run_values)
    assert run_values[0]["Subkey"] == autostart.WIN_RUN_KEY
    assert re.search(rf'#define RunValue "{autostart.WIN_VALUE}"', ISS.read_text())
    assert any(e.get("Tasks") == "startup" and e["ValueType"] == "string" for e in run_values)
    assert any("uninsdeletevalue" in e.get("Flags", "") and "Tasks" not in e for e in run_values)

    # Firewall: every rule the installer adds, the uninstaller deletes (same name).
    def rules(entries: list[dict[str, str]], verb: str) -> set[str]:
        return {
            m.group(1)
            for e in entries
            if e["Filename"].endswith("netsh.exe")
            for m in [re.search(rf'firewall {verb} rule name="([^"]+)"', e["Parameters"])]
            if m
        }

    added = rules(sections["Run"], "add")
    assert added and added <= rules(sections["UninstallRun"], "delete")
    for entry in sections["Run"]:
        if "firewall add rule" in entry.get("Parameters", ""):
            params = entry["Parameters"]
            assert "dir=in" in params and "action=allow" in params and "protocol=TCP" in params
            assert 'program="{app}\\{#AppExe}"' in params
            assert "runhidden" in entry["Flags"] and entry["Tasks"].startswith("firewall")
    launch = [e for e in sections["Run"] if "postinstall" in e.get("Flags", "")]
    assert launch and "runasoriginaluser" in launch[0]["Flags"]  # never run the tray as admin

    code = "\n".join(sections["Code"])
    assert len(re.findall(r"\bbegin\b", code)) == len(re.findall(r"\bend\b", code))
    # Everything used as {#Name} is defined here or passed by build.py (next test).
    assert used - defined <= {"AppVersion", "AppNumericVersion", "SourceDir", "IconFile",
                              "OutputDir", "OutputBase", "DefaultPort"}  # fmt: skip


def test_windows_build_passes_every_define_the_script_needs() -> None:
    out = run_build_dry("windows")
    iscc = next(line for line in out.splitlines() if "ISCC.exe" in line)
    passed = set(re.findall(r"/D(\w+)=", iscc))
    _, defined, used = parse_iss(ISS.read_text(encoding="utf-8"))
    assert used - defined <= passed
    assert f"/DAppVersion={pyproject_version()}" in iscc
    assert f"/DDefaultPort={buildinfo.DEFAULT_PORT}" in iscc
    assert iscc.rstrip().endswith("partystream.iss")
    assert "signtool" not in out and "/DSign" not in iscc
    assert "WINDOWS_CERT_PFX/WINDOWS_CERT_PASSWORD unset" in out


def test_windows_build_signs_when_a_certificate_is_configured() -> None:
    env = {"WINDOWS_CERT_PFX": "C:\\certs\\ps.pfx", "WINDOWS_CERT_PASSWORD": "hunter2-secret"}
    out = run_build_dry("windows", env)
    sign_exe = next(line for line in out.splitlines() if "sign /fd sha256" in line)
    assert sign_exe.rstrip().endswith("PartyStream.exe")
    iscc = next(line for line in out.splitlines() if "ISCC.exe" in line)
    assert "/DSign=1" in iscc and "/Spssign=" in iscc and "$f" in iscc
    assert "hunter2-secret" not in out
    assert "#ifdef Sign" in ISS.read_text() and "SignTool=pssign" in ISS.read_text()


# -- CI workflow ----------------------------------------------------------------------------------
def test_installers_workflow_builds_every_platform_and_keeps_artefacts() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML checks the workflow file")
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    expected = {"linux": "ubuntu-", "windows": "windows-", "macos": "macos-"}
    assert set(jobs) == set(expected)
    for name, runner in expected.items():
        job = jobs[name]
        runs_on = job["runs-on"]
        labels = ([m["runner"] for m in job["strategy"]["matrix"]["include"]]
                  if "${{" in runs_on else [runs_on])  # fmt: skip
        assert all(label.startswith(runner) for label in labels), labels
        assert job.get("timeout-minutes"), f"{name}: no timeout"
        steps = job["steps"]
        for step in steps:
            assert set(step) <= {"name", "uses", "with", "run", "env", "if", "shell", "id"}, step
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:  # pinned to a full commit (a tag can be moved under us)
                assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
        runs = "\n".join(s.get("run", "") for s in steps)
        assert f"python packaging/build.py {name}" in runs
        assert 'pip install -e ".[package' in runs
        uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
        assert len(uploads) == 1 and uploads[0]["with"]["if-no-files-found"] == "error"
        checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False
    assert "PARTYSTREAM_FROZEN_APP" in str(jobs["linux"])  # the frozen-app tests run there
    assert "/VERYSILENT" in str(jobs["windows"]) and "unins000.exe" in str(jobs["windows"])
    assert "hdiutil verify" in str(jobs["macos"]) and "LSUIElement" in str(jobs["macos"])


# -- icons ----------------------------------------------------------------------------------------
def test_icons_are_generated_from_the_svg(tmp_path: Path) -> None:
    from PIL import Image

    done = subprocess.run(
        [sys.executable, str(PACKAGING / "icons.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with Image.open(tmp_path / "partystream.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    with Image.open(tmp_path / "partystream.icns") as icns:
        assert icns.size == (1024, 1024)
    with Image.open(tmp_path / "partystream.png") as png:
        assert png.size == (512, 512) and png.mode == "RGBA"
        assert png.getpixel((0, 0))[3] == 0  # transparent corner: rounded icon, not a square
        assert png.getpixel((256, 256))[3] == 255


# -- the frozen Linux app --------------------------------------------------------------------------
class Frozen:
    """The bundle under test: its folder, executable and how it was made."""

    def __init__(self, folder: Path, source: Path | None, seconds: float | None) -> None:
        self.folder = folder
        self.exe = folder / buildinfo.exe_name("linux")
        self.source = source  # the checkout copy it was built from (None: prebuilt)
        self.seconds = seconds


def checkout_copy(dest: Path) -> Path:
    """The files git would commit (tracked + untracked, nothing ignored), copied to dest."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():  # deleted but not yet committed: a clean checkout lacks it too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> Frozen:
    if prebuilt := os.environ.get("PARTYSTREAM_FROZEN_APP"):
        folder = Path(prebuilt).resolve()
        assert (folder / buildinfo.exe_name("linux")).is_file(), f"no app in {folder}"
        return Frozen(folder, None, None)
    if not sys.platform.startswith("linux"):
        pytest.skip("the frozen-app tests build the Linux bundle")
    pytest.importorskip("PyInstaller", reason='needs the extra: pip install -e ".[package]"')
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean checkout has")
    root = tmp_path_factory.mktemp("frozen")
    source = checkout_copy(root / "checkout")
    log = root / "build.log"
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "packaging/build.py", "linux",
             "--dist", str(root / "dist"), "--work", str(root / "build")],
            cwd=source, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        pytest.fail("build failed:\n" + log.read_text()[-6000:])
    app = Frozen(root / "dist" / buildinfo.exe_name("linux"), source, seconds)
    files = [p for p in app.folder.rglob("*") if p.is_file() and not p.is_symlink()]
    size = sum(p.stat().st_size for p in files)
    report = {"build_seconds": round(seconds, 1), "bundle_bytes": size,
              "bundle_mb": round(size / 1e6, 1), "files": len(files)}  # fmt: skip
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "linux-build.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.copy2(log, ARTIFACTS / "linux-build.log")
    print(f"\nLinux bundle: built in {seconds:.0f} s, {size / 1e6:.0f} MB ({len(files)} files)")
    return app


def clean_env(home: Path) -> dict[str, str]:
    """No display (serve stays headless) and a private home (no real settings touched)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
           and not k.startswith(("XDG_", "PYTHON", "PYI_"))}  # fmt: skip
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_STATE_HOME=str(home / ".local/state"))  # fmt: skip
    return env


def frozen_process(exe: Path, args: list[str], env: dict[str, str]) -> Running:
    return Running([str(exe), *args], env=env, cwd=env["HOME"])


def frozen_python(app: Frozen, code: str, home: Path) -> dict:
    """Run `code` inside the frozen app's own interpreter and return what it printed as JSON.

    PyInstaller's multiprocessing runtime hook executes `-c "from multiprocessing.
    resource_tracker import main..."` commands (how spawn starts its resource tracker), so
    code placed after that import runs with the bundle's modules, paths and libraries.
    """
    # exec() runs it with a function's locals: wrap it in a function so that comprehensions
    # and nested scopes see its names.
    body = "".join(f"    {line}\n" for line in code.splitlines())
    command = f"from multiprocessing.resource_tracker import main\ndef _probe():\n{body}_probe()\n"
    done = subprocess.run(
        [str(app.exe), "-B", "-S", "-I", "-c", command],
        capture_output=True, text=True, timeout=120, env=clean_env(home),
    )  # fmt: skip
    m = re.search(r"^FROZEN-JSON (.*)$", done.stdout, re.M)
    assert done.returncode == 0 and m, f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(m.group(1))


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_bundle_has_the_app_its_assets_and_no_host_only_libraries(frozen: Frozen) -> None:
    folder, internal = frozen.folder, frozen.folder / "_internal"
    assert os.access(frozen.exe, os.X_OK)
    web = internal / "resources" / "web"
    assert (web / "index.html").is_file()
    assert (web / "static" / "vendor" / "sendspin.js").stat().st_size > 100_000
    assert (internal / "resources" / "icons" / "app.svg").is_file()
    assert not list(internal.rglob("node_modules")) and not (web / "package.json").exists()
    version = pyproject_version()
    assert (internal / f"partystream-{version}.dist-info" / "METADATA").is_file()
    names = {p.name for p in internal.rglob("*.so*")}
    assert "libportaudio.so.2" in names
    assert not {n for n in names if n.startswith(("libasound.so", "libjack.so", "libgtk-3"))}
    assert not list(internal.rglob("translations/qtbase_*.qm"))
    plugins = internal / "PySide6" / "Qt" / "plugins"
    assert (plugins / "platforms" / "libqxcb.so").is_file()
    assert (plugins / "platforms" / "libqoffscreen.so").is_file()
    assert (plugins / "imageformats" / "libqsvg.so").is_file()
    assert (plugins / "iconengines" / "libqsvgicon.so").is_file()
    assert (folder / "partystream.png").is_file()


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_frozen_interpreter_finds_version_resources_and_audio_libraries(
    frozen: Frozen, tmp_path: Path
) -> None:
    info = frozen_python(
        frozen,
        "import importlib.metadata, json, sys\n"
        "out = {'frozen': bool(getattr(sys, 'frozen', False)), 'meipass': sys._MEIPASS}\n"
        "out['version'] = importlib.metadata.version('partystream')\n"
        "from server import paths\n"
        "out['web'] = str(paths.web_root())\n"
        "out['index'] = (paths.web_root() / 'index.html').is_file()\n"
        "import sounddevice\n"
        "out['portaudio'] = sounddevice.get_portaudio_version()[1]\n"
        "out['portaudio_lib'] = str(sounddevice._libname)\n"
        "import av\n"
        "out['decoders'] = sorted(c for c in ('mp3', 'flac', 'aac', 'opus', 'vorbis')"
        " if c in av.codecs_available)\n"
        "import aiosendspin.server, PySide6.QtSvg, PySide6.QtWidgets, segno, qasync\n"
        "print('FROZEN-JSON ' + json.dumps(out))\n",
        tmp_path,
    )
    assert info["frozen"] is True
    assert info["version"] == pyproject_version()  # importlib.metadata in the frozen build
    assert Path(info["web"]) == Path(info["meipass"]) / "resources" / "web" and info["index"]
    assert info["portaudio"].startswith("PortAudio V19")
    assert info["decoders"] == ["aac", "flac", "mp3", "opus", "vorbis"]


PORTAUDIO_PROBE = (
    "import ctypes.util, json, sounddevice\n"
    "print('FROZEN-JSON ' + json.dumps({'lib': str(sounddevice._libname),"
    " 'version': sounddevice.get_portaudio_version()[1]}))\n"
)


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_bundled_portaudio_is_used_when_the_host_has_none(frozen: Frozen, tmp_path: Path) -> None:
    """Hide the host's PortAudio (ldconfig fails in a private mount namespace): the
    runtime hook must hand sounddevice the copy in the bundle."""
    probe = shutil.which("unshare")
    ldconfig = "/sbin/ldconfig"
    if not (probe and os.geteuid() == 0 and os.path.exists(ldconfig)):
        pytest.skip("needs root, unshare and /sbin/ldconfig to hide the host's PortAudio")
    body = "".join(f"    {line}\n" for line in PORTAUDIO_PROBE.splitlines())
    command = f"from multiprocessing.resource_tracker import main\ndef _p():\n{body}_p()\n"
    script = 'mount --bind /bin/false "$1" && shift && exec "$@"'
    done = subprocess.run(
        [probe, "-m", "sh", "-c", script, "sh", ldconfig,
         str(frozen.exe), "-B", "-S", "-I", "-c", command],
        capture_output=True, text=True, timeout=120, env=clean_env(tmp_path),
    )  # fmt: skip
    if done.returncode != 0 and "mount" in done.stderr + done.stdout:
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()}")
    m = re.search(r"^FROZEN-JSON (.*)$", done.stdout, re.M)
    assert done.returncode == 0 and m, done.stdout + done.stderr
    info = json.loads(m.group(1))
    assert Path(info["lib"]) == frozen.folder / "_internal" / "libportaudio.so.2"
    assert info["version"].startswith("PortAudio V19")


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name
)
async def test_frozen_party_streams_audio_and_leaves_no_process(
    frozen: Frozen, tmp_path: Path, stop: signal.Signals
) -> None:
    port = free_base_port(3)
    app = frozen_process(
        frozen.exe,
        ["serve", "--demo", "--workers", "2", "--port", str(port), "--public-host", "127.0.0.1"],
        clean_env(tmp_path),
    )
    listeners: list[Listener] = []
    try:
        url = app.wait_for(r"Phones open: (http://\S+)", START_TIMEOUT).group(1)
        code, status = await asyncio.to_thread(http_json, url + "api/status")
        assert code == 200 and status["state"] == "live", status
        assert len(status["workers"]) == 2 and all(w["alive"] for w in status["workers"])
        # Coordinator and both workers are this same executable, spawned (nested).
        family = app.descendant_pids()
        cmdlines = [" ".join(psutil.Process(p).cmdline()) for p in family]
        assert sum("--multiprocessing-fork" in c for c in cmdlines) == 3, cmdlines
        assert all(c.startswith(str(frozen.exe)) for c in cmdlines), cmdlines
        # A real Sendspin client on every worker receives audio.
        for worker in status["workers"]:
            listener = Listener(f"ws://127.0.0.1:{worker['port']}/sendspin", keep_audio=False)
            listeners.append(listener)
            await listener.connect()
        for listener in listeners:
            await listener.wait_chunks(20, timeout=30)
        await eventually(
            lambda: (http_json(url + "api/status")[1] or {}).get("listeners") == 2,
            timeout=15, what="both listeners counted",
        )  # fmt: skip
        family = app.descendant_pids()
    finally:
        for listener in listeners:
            await listener.close()
    app.proc.send_signal(stop)
    code = await asyncio.to_thread(app.finish, 30)
    if stop == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 0, app.output()
        assert "Party stopped." in app.output()
    assert "Traceback" not in app.output(), app.output()
    # Nothing survives: coordinator, workers and the resource tracker all exit, even after
    # kill -9 of the parent (children exit when their link to it drops).
    await eventually(lambda: not pids_alive(family), timeout=20, what="no process left")


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_frozen_gui_starts_offscreen_and_quits_on_sigterm(frozen: Frozen, tmp_path: Path) -> None:
    source = frozen.source or REPO
    if not (source / "desktop" / "app.py").is_file():
        pytest.skip("desktop/app.py (the tray GUI) does not exist yet: nothing to freeze")
    env = {**clean_env(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    # The About box's version: importlib.metadata inside the frozen GUI.
    done = subprocess.run([str(frozen.exe), "--version"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"Party Stream {pyproject_version()}"

    app = frozen_process(frozen.exe, [], env)
    try:
        # desktop/app.py logs "started in N ms" once the tray/window is up and the loop runs.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and app.proc.poll() is None:
            logs = list(tmp_path.rglob("gui.log"))
            if logs and "started in" in logs[0].read_text(errors="replace"):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the GUI did not start (rc={app.proc.poll()}):\n{app.output()}")
        time.sleep(2)  # let start-up work (first-run window, settings file) settle
        assert app.proc.poll() is None, f"the GUI exited early:\n{app.output()}"
        assert "Traceback" not in app.output(), app.output()
        family = app.descendant_pids()
    except BaseException:
        app.proc.kill()
        raise
    app.proc.send_signal(signal.SIGTERM)
    code = app.finish(30)
    assert code == 0, f"exit code {code}:\n{app.output()}"
    assert "Traceback" not in app.output(), app.output()
    deadline = time.monotonic() + 20
    while pids_alive(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pids_alive(family)


@pytest.fixture(autouse=True, scope="module")
def _no_stray_frozen_processes() -> Iterator[None]:
    """After the module: no process of any bundle built here is left (belt and braces)."""
    yield
    strays = []
    for proc in psutil.process_iter(["exe", "cmdline"]):
        exe = proc.info.get("exe") or ""
        if "/frozen" in exe and exe.endswith("/partystream"):
            strays.append(proc.pid)
    assert not pids_alive(strays), f"frozen processes left: {strays}"
