"""The QR widget draws a code phones can read, at any size, from segno's modules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from desktop.qr_code import QUIET_ZONE, QrCode, qr_matrix
from tests.desktop.conftest import qt_app

URL = "http://192.168.178.23:8927/"


def test_matrix_is_a_real_qr_code() -> None:
    rows = qr_matrix(URL)
    assert len(rows) == len(rows[0]) >= 21  # version 1 is 21×21 modules
    assert all(rows[i][j] for i in range(7) for j in (0, 6))  # a finder pattern's edge


@pytest.mark.parametrize("side", [200, 333, 512])
def test_drawn_code_decodes_to_the_url(side: int, tmp_path: Path) -> None:
    if shutil.which("zbarimg") is None:
        pytest.skip("needs zbarimg (apt-get install zbar-tools)")
    qt_app()
    widget = QrCode()
    widget.resize(side, side)
    widget.set_text(URL)
    shot = tmp_path / "qr.png"
    assert widget.grab().save(str(shot))
    out = subprocess.run(
        ["zbarimg", "-q", "--raw", str(shot)], capture_output=True, text=True, timeout=20
    )
    assert out.stdout.strip() == URL
    modules = len(qr_matrix(URL)) + 2 * QUIET_ZONE
    assert side // modules >= 2, "at least two pixels per module at the smallest size"


def test_empty_widget_draws_no_code() -> None:
    qt_app()
    widget = QrCode()
    widget.set_text(URL)
    widget.set_text("")
    assert widget.text() == "" and widget.accessibleName() == ""
