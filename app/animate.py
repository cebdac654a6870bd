"""Animations: sweep one parameter of a panel and write a GIF or an MP4 of one plot or of the whole panel.

Each frame is the panel redrawn at the next value, with everything it computes (theory and simulation)
finished before the frame is taken, so that no frame mixes two parameter values. GIFs are written by
Pillow (each frame reduced to 256 colours as it comes, see :class:`_GifFrames`), MP4s (H.264) by the
ffmpeg that the imageio-ffmpeg wheel carries, through imageio.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from core.params import ParamError, Params, Spec

SUFFIXES = (".gif", ".mp4")
MAX_FRAMES = 1000
#: libx264's yuv420p wants even sizes, and ffmpeg's macro blocks multiples of 16: frames are padded.
MACRO_BLOCK = 16
FRAME_TIMEOUT_S = 300


class AnimationError(ValueError):
    """A request that cannot be animated; the message says which argument and why."""


def sweep(spec: Spec, start: float, stop: float, frames: int) -> list:
    """``frames`` values from ``start`` to ``stop``: evenly spaced, geometrically for a log-scaled
    parameter, rounded for an integer one."""
    if spec.scale == "log" and start > 0 and stop > 0:
        values = np.geomspace(start, stop, frames)
    else:
        values = np.linspace(start, stop, frames)
    if spec.kind is int:
        return [int(round(v)) for v in values]
    return [float(v) for v in values]


def check(params: Params, name: str, start: float, stop: float, frames: int, out: Path) -> list:
    """The values to sweep, after checking every argument; AnimationError naming the bad one."""
    try:
        spec = params.spec(name)
    except ParamError:
        numeric = [s.name for s in params.specs() if s.kind in (int, float)]
        raise AnimationError(f"--param {name!r}: no such parameter (numbers: {', '.join(numeric)})") from None
    if spec.kind not in (int, float):
        raise AnimationError(f"--param {name}: only numbers can be swept, {name} is a {spec.kind.__name__}")
    for flag, value in (("--from", start), ("--to", stop)):
        if not math.isfinite(value):
            raise AnimationError(f"{flag} {value}: not a finite number")
        try:
            params.replace(**{name: int(round(value)) if spec.kind is int else float(value)})
        except ParamError as err:
            raise AnimationError(f"{flag} {value:g}: {err.problem}") from None
    if not 2 <= frames <= MAX_FRAMES:
        raise AnimationError(f"--frames {frames}: expected 2 to {MAX_FRAMES}")
    if out.suffix.lower() not in SUFFIXES:
        raise AnimationError(f"--out {out}: the file must end in .gif or .mp4")
    if not out.parent.exists():
        raise AnimationError(f"--out {out}: folder {out.parent} does not exist")
    return sweep(spec, start, stop, frames)


def image_array(image) -> np.ndarray:
    """A QImage as an (h, w, 3) uint8 RGB array."""
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = image.height(), image.width()
    rows = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h).reshape(h, -1)
    return rows[:, : 3 * w].reshape(h, w, 3).copy()


def grab(panel, plot: str | None = None, width: int = 1280):
    """One frame: plot ``plot`` exported ``width`` pixels wide, or the whole panel as on screen."""
    if plot is None:
        from app import plots

        plots.release_held()
        return image_array(panel.grab().toImage())
    from pyqtgraph.exporters import ImageExporter

    from app import plots

    widget = panel.plots[plot]
    exporter = ImageExporter(widget.getPlotItem())
    exporter.parameters()["width"] = int(width)
    with plots.export_scale(widget, int(width)):
        image = exporter.export(toBytes=True)
    return image_array(image)


def theory_busy(panel) -> bool:
    """Whether the panel still has immediate work (its theory) to draw; a debounced job (a simulation
    waiting for the slider to rest) does not count until it has started."""
    runner = panel.runner
    for key in panel._job_keys:
        if key in runner._running:
            return True
        pending = runner._pending.get(key)
        if pending is not None and pending[1].delay_ms == 0:
            return True
    return False


def settle(panel, app, before: int, theory_only: bool = False, timeout_s: float = FRAME_TIMEOUT_S) -> None:
    """Serve the event loop until the panel has drawn after render ``before`` and has nothing left to
    compute (with ``theory_only``, nothing immediate: its debounced simulations are skipped)."""
    from PySide6.QtCore import QEventLoop

    busy = theory_busy if theory_only else (lambda p: p.is_busy())
    deadline = time.monotonic() + timeout_s
    while (busy(panel) or panel.render_count <= before) and time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if busy(panel):
            time.sleep(0.002)
    if busy(panel) or panel.render_count <= before:
        raise AnimationError(f"the panel took more than {timeout_s:g} s to draw a frame")
    app.processEvents()  # the repaint of what was drawn


def frames(panel, name: str, values: list, plot: str | None = None, width: int = 1280,
           theory_only: bool = False) -> Iterator[np.ndarray]:
    """The panel at each value of parameter ``name``, one frame each (see :func:`settle`)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    pinned = None
    try:
        for value in values:
            before = panel.render_count
            if getattr(panel.params, name) == value and panel.render_count > 0 and not panel.is_busy():
                app.processEvents()
            else:
                panel.set_params(**{name: value})
                settle(panel, app, before, theory_only)
            if plot is not None and pinned is None:
                pinned = _pin_size(panel.plots[plot])
            yield grab(panel, plot, width)
    finally:
        if pinned is not None:
            pinned()


def _pin_size(widget) -> Callable[[], None]:
    """Hold ``widget`` at its present size; returns what lets it go. A plot's frames are exported at one
    width, their height following the plot's shape: as the swept parameter changed a neighbour's tick
    labels, the plot grid gave the plot a few pixels more or less, and the frames (298 px wide, then
    306) no longer stacked into one animation."""
    low, high = widget.minimumSize(), widget.maximumSize()
    widget.setFixedSize(widget.size())

    def release() -> None:
        from app import plots

        widget.setMaximumSize(high)
        widget.setMinimumSize(low)
        plots.schedule_fit(widget, full=True)  # the room its labels need, asked for again
    return release


def _padded(frame: np.ndarray, block: int) -> np.ndarray:
    h, w = frame.shape[:2]
    ph, pw = -h % block, -w % block
    if not (ph or pw):
        return frame
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)), mode="edge")


class _GifFrames:
    """GIF frames reduced to 256 colours as they arrive, written by Pillow on :meth:`close`.

    Pillow's own GIF writer reduces every frame by median cut when the file is saved: 0.1 s a frame at
    1280×720, all of it after the last frame (9.7 s for 60, with the progress bar already full). Here the
    first frame's median-cut palette serves the frames after it, each colour sent to its nearest palette
    entry (remembered per colour: frames share nearly all of theirs), one palette for the whole file so
    that flat colours cannot flicker from frame to frame. A panel's colour bars hold its colour maps
    whole, so that palette covers what later frames show; a frame it does not cover (its mean error more
    than twice the first frame's) gets a median-cut palette of its own.
    """

    def __init__(self, path: Path, fps: float):
        self.path, self.duration = path, 1000.0 / fps
        self.frames: list = []
        self.palette: _Palette | None = None

    def append_data(self, frame: np.ndarray) -> None:
        from PIL import Image

        rgb = np.ascontiguousarray(frame[..., :3])
        if self.palette is not None:
            indices, error = self.palette.reduce(rgb)
            if error <= self.palette.tolerance:
                image = Image.fromarray(indices, mode="P")
                image.putpalette(self.palette.flat)
                self.frames.append(image)
                return
        reduced = Image.fromarray(rgb).quantize(256, method=Image.Quantize.MEDIANCUT)
        if self.palette is None:
            self.palette = _Palette(reduced, rgb)
        self.frames.append(reduced)

    def close(self) -> None:
        if self.frames:
            self.frames[0].save(self.path, save_all=True, append_images=self.frames[1:], duration=self.duration,
                                loop=0)


class _Palette:
    """A median-cut frame's palette; each 24-bit colour's nearest entry in it, found once per colour; and
    the palette indices of the last frame reduced, of which only the pixels that changed are redone."""

    def __init__(self, reduced, rgb: np.ndarray):
        self.flat = reduced.getpalette()[: 3 * 256]
        self.colours = np.asarray(self.flat, np.int32).reshape(-1, 3)
        self.nearest = np.full(1 << 24, -1, np.int16)
        self.last = rgb
        self.indices = np.asarray(reduced).copy()
        self.error = np.abs(self.colours[self.indices] - rgb).sum(axis=2)     # per pixel, over R, G, B
        self.tolerance = 2.0 * self.mean_error + 0.5

    @property
    def mean_error(self) -> float:
        """Mean absolute error of the last frame reduced, in 8-bit levels."""
        return float(self.error.mean()) / 3.0

    def reduce(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """Palette indices of the frame ``rgb`` and their mean absolute error in 8-bit levels."""
        if rgb.shape != self.last.shape:
            self.last = np.zeros_like(rgb)
            self.indices = np.zeros(rgb.shape[:2], np.uint8)
            self.error = np.zeros(rgb.shape[:2], np.int32)
        differs = rgb != self.last
        changed = np.flatnonzero(differs[..., 0] | differs[..., 1] | differs[..., 2])  # .any(axis=2): 10× slower
        pixels = rgb.reshape(-1, 3)[changed].astype(np.int32)
        packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
        nearest = self.nearest[packed]
        new = np.unique(packed[nearest < 0])
        for chunk in np.array_split(new, max(1, new.size // 4096)):
            ask = np.stack([chunk >> 16, (chunk >> 8) & 255, chunk & 255], axis=1)
            self.nearest[chunk] = np.square(ask[:, None, :] - self.colours[None]).sum(axis=2).argmin(axis=1)
        if new.size:
            nearest = self.nearest[packed]
        self.indices.flat[changed] = nearest
        self.error.flat[changed] = np.abs(self.colours[nearest] - pixels).sum(axis=1)
        self.last = rgb
        return self.indices.copy(), self.mean_error


def write(path: str | Path, images: Iterator[np.ndarray], fps: float = 12.0,
          progress: Callable[[int], None] | None = None, cancelled: Callable[[], bool] | None = None) -> int:
    """Write ``images`` to a GIF or an MP4 (by ``path``'s suffix); the number of frames written.

    ``progress(n)`` is called after each frame; when ``cancelled()`` turns true the file is removed
    and 0 returned.
    """
    path = Path(path)
    gif = path.suffix.lower() == ".gif"
    if gif:
        writer = _GifFrames(path, fps)
    else:
        import imageio.v2 as imageio

        writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=MACRO_BLOCK, ffmpeg_log_level="error")
    count = 0
    try:
        for frame in images:
            if cancelled is not None and cancelled():
                count = 0
                break
            writer.append_data(frame if gif else _padded(frame, MACRO_BLOCK))
            count += 1
            if progress is not None:
                progress(count)
    finally:
        if count == 0 and gif:
            writer.frames.clear()  # cancelled: nothing to save
        writer.close()
        if count == 0:
            path.unlink(missing_ok=True)
    return count
