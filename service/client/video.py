"""Video frames for the Live API: still images (`--image`) and a local camera (`--camera`, optional extra).

Frames go out as `realtimeInput.video` blobs, JPEG or PNG, the way Google's browser sample sends its camera at one
frame a second. The camera goes through OpenCV (`pip install 'livetoken[camera]'`, opencv-python-headless).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CAMERA_MAX_SIDE = 768  # Google downscales frames to at most 768 px on the long side: more is only upload time
CAMERA_JPEG_QUALITY = 80


class VideoInputError(Exception):
    """An image or camera the client cannot use; the message says why in one line."""


@dataclass(frozen=True)
class Frame:
    """One encoded video frame."""

    data: bytes
    mime_type: str


def image_frame(path: Path) -> Frame:
    """A JPEG or PNG file as a frame, its type read from the file's content rather than its name."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VideoInputError(f"{path}: {exc.strerror}") from None
    if data.startswith(JPEG_MAGIC):
        return Frame(data, "image/jpeg")
    if data.startswith(PNG_MAGIC):
        return Frame(data, "image/png")
    raise VideoInputError(f"{path}: not a JPEG or PNG image")


def _opencv() -> Any:
    try:
        return importlib.import_module("cv2")
    except ImportError:
        raise VideoInputError(
            "camera capture needs the optional extra: pip install 'livetoken[camera]' (opencv-python-headless)"
        ) from None


class Camera:
    """A local camera that hands out JPEG frames."""

    def __init__(self, device: int = 0) -> None:
        self._cv2 = _opencv()
        self._capture = self._cv2.VideoCapture(device)
        if not self._capture.isOpened():
            self._capture.release()
            raise VideoInputError(f"no camera at device {device} (or it is in use by another program)")
        self.device = device

    def frame(self) -> Frame:
        """Grab one frame now (blocking: call it from a thread in async code)."""
        ok, image = self._capture.read()
        if not ok:
            raise VideoInputError(f"camera {self.device} returned no frame")
        height, width = image.shape[:2]
        if max(height, width) > CAMERA_MAX_SIDE:
            scale = CAMERA_MAX_SIDE / max(height, width)
            image = self._cv2.resize(image, (int(width * scale), int(height * scale)))
        ok, encoded = self._cv2.imencode(".jpg", image, [int(self._cv2.IMWRITE_JPEG_QUALITY), CAMERA_JPEG_QUALITY])
        if not ok:
            raise VideoInputError(f"camera {self.device}: the frame could not be encoded as JPEG")
        return Frame(bytes(encoded.tobytes()), "image/jpeg")

    def close(self) -> None:
        """Release the device."""
        self._capture.release()
