"""The vendored Sendspin bundle is what resources/web/build.sh makes from the pinned packages,
and its patches still find their spots: an upgrade of sendspin-js that moves one fails here
(and in the build), never silently in a guest's browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "resources" / "web"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "esbuild").is_dir():
        message = "needs node and `npm ci` in resources/web (scripts/bootstrap.sh --test does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node


def _build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_node(), "build.mjs", "--check", *args],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_committed_bundle_is_a_fresh_build_with_every_patch() -> None:
    done = _build()
    assert done.returncode == 0, done.stderr
    patches = sorted(p.name for p in (WEB / "patches").glob("*.mjs"))
    assert patches and all(name in done.stdout for name in patches), done.stdout
    bundle = (WEB / "static" / "vendor" / "sendspin.js").read_text()
    assert "__partystreamWasmOpus" in bundle and "probeWasmOpus" in bundle


def test_a_patch_whose_spot_moved_stops_the_build(tmp_path: Path) -> None:
    for patch in (WEB / "patches").glob("*.mjs"):
        shutil.copy(patch, tmp_path)
    (tmp_path / "zz-moved.mjs").write_text(
        "export default { file: '@sendspin/sendspin-js/dist/core/codec-support.js',"
        " spots: [{ name: 'gone', find: 'a line no release has', replace: '' }] };\n"
    )
    done = _build("--patches", str(tmp_path))
    assert done.returncode != 0
    assert 'zz-moved.mjs: spot "gone" found 0 times' in done.stderr, done.stderr


def test_a_patch_for_a_file_outside_the_bundle_stops_the_build(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.mjs").write_text(
        "export default { file: 'esbuild/lib/main.js', spots: [] };\n"
    )
    done = _build("--patches", str(tmp_path))
    assert done.returncode != 0 and "not in the bundle" in done.stderr, done.stderr
