"""A spectrogram: log-magnitude STFT drawn as an image (time left to right, low pitch at the
bottom), with a magma-like colour map. Computed with numpy when the audio is set (a few
milliseconds for a 4-second note; long audio uses a larger hop so at most ~2000 columns)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

if TYPE_CHECKING:
    from models.audio_io import Audio

N_FFT = 512
MAX_COLUMNS = 2000
FLOOR_DB = -80.0

# dark purple -> red -> orange -> pale yellow, as 256 RGB entries
_STOPS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                   [245, 125, 21], [250, 193, 39], [252, 253, 191]], dtype=np.float64)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_STOPS)), _STOPS[:, c])
                 for c in range(3)], axis=1).astype(np.uint8)


def spectrogram_db(samples: np.ndarray, n_fft: int = N_FFT,
                   max_columns: int = MAX_COLUMNS) -> np.ndarray:
    """``(bins, frames)`` magnitudes in dB relative to the loudest bin (floored at -80 dB)."""
    x = np.asarray(samples, np.float32).reshape(-1)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    hop = max(n_fft // 4, int(np.ceil((x.size - n_fft) / max_columns)) or 1)
    frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    mag = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft).astype(np.float32), axis=1)).T
    db = 20.0 * np.log10(np.maximum(mag, 1e-9))
    return np.maximum(db - db.max(), FLOOR_DB)


class SpectrogramView(QWidget):
    """``set_audio(audio)`` shows its spectrogram (mono mix); ``None`` shows the placeholder."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(120, 60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.placeholder = "No sound"
        self.db: np.ndarray | None = None
        self.sample_rate = 0
        self._image: QImage | None = None

    def set_audio(self, audio: Audio | None) -> None:
        if audio is None or audio.samples.size == 0:
            self.db, self._image, self.sample_rate = None, None, 0
        else:
            x = np.asarray(audio.samples, np.float32)
            mono = x.mean(axis=1) if x.ndim == 2 else x
            self.db = spectrogram_db(mono)
            self.sample_rate = int(audio.sample_rate)
            level = np.clip((self.db - FLOOR_DB) / -FLOOR_DB * 255.0, 0, 255).astype(np.uint8)
            rgb = np.ascontiguousarray(_LUT[level[::-1]])  # low frequencies at the bottom
            h, w = rgb.shape[:2]
            self._image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.update()

    @property
    def energy(self) -> float:
        """Mean level above the floor (0 for silence or no audio): tests check it."""
        return 0.0 if self.db is None else float(np.mean(self.db - FLOOR_DB))

    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 4))
        if self._image is None:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)
        else:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(QRectF(self.rect()), self._image)
            p.setPen(QColor(230, 230, 230, 160))
            p.drawText(self.rect().adjusted(4, 2, -4, -2),
                       Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight,
                       f"{self.sample_rate / 2000:g} kHz")
        p.end()
