"""Names the dead-code check (vulture, in ./test.sh) cannot see being used."""
# ruff: noqa: B018, F821

from desktop.qr_code import QrCode
from desktop.qr_window import QrWindow
from server.sources.capture import CaptureSource

QrCode.hasHeightForWidth  # Qt calls these overrides
QrCode.heightForWidth
QrCode.paintEvent
QrWindow.closeEvent
CaptureSource.last_capture_us  # read by bench/capture_latency.py and tests/test_capture.py
_.sample_rate  # PyAV reads it from the frame we build
_.exc_text  # logging reads these LogRecord fields (server/logs.py rewrites them)
_.levelname
