"""Entry point: ``edge-of-chaos`` starts the GUI; ``edge-of-chaos render PANEL`` exports without a display.

Bad input on the command line ends with exit status 2 and one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from app import __version__

RENDER_TIMEOUT_S = 600


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2 (through UsageError)."""

    def error(self, message: str):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    from app.panels import NAMES

    parser = _Parser(prog="edge-of-chaos",
                                     description="Explore the theory of deep learning live.")
    parser.add_argument("--version", action="version", version=f"edge-of-chaos {__version__}")
    sub = parser.add_subparsers(dest="command")
    render = sub.add_parser("render", help="write every plot of a panel as PNG, SVG and CSV, no display needed")
    render.add_argument("panel", help=f"one of: {', '.join(NAMES)}")
    render.add_argument("--params", type=Path, help="a parameter-set JSON file for that panel")
    render.add_argument("--out", type=Path, default=Path("."), help="output folder (default: current)")
    render.add_argument("--png-width", type=int, default=1600, help="width of each PNG in pixels")
    animate = sub.add_parser("animate", help="sweep one parameter and write a GIF or MP4 of a plot or the panel")
    animate.add_argument("panel", help=f"one of: {', '.join(NAMES)}")
    animate.add_argument("--param", required=True, help="the numeric parameter to sweep, e.g. sigma_w")
    animate.add_argument("--from", dest="start", type=float, required=True, help="its first value")
    animate.add_argument("--to", dest="stop", type=float, required=True, help="its last value")
    animate.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    animate.add_argument("--out", type=Path, required=True, help="the file to write, .gif or .mp4")
    animate.add_argument("--plot", help="one plot of the panel (default: the whole panel)")
    animate.add_argument("--params", type=Path, help="a parameter-set JSON file for the other parameters")
    animate.add_argument("--size", default="1280x720", help="the panel's size, or the plot's width (default 1280x720)")
    animate.add_argument("--fps", type=float, default=12.0, help="frames per second (default 12)")
    animate.add_argument("--theory-only", action="store_true",
                         help="take each frame once the theory is drawn, without the (debounced) simulation")
    return parser


def _check_render_args(args) -> tuple[object, object]:
    from app.panels import NAMES, entry
    from app.paramsets import ParamFileError, read_params

    if args.panel not in NAMES:
        raise UsageError(f"unknown panel {args.panel!r}; choose from: {', '.join(NAMES)}")
    if entry(args.panel).module is None:
        raise UsageError(f"the {args.panel} panel is not built yet; nothing to render")
    if not 200 <= args.png_width <= 10000:
        raise UsageError(f"--png-width {args.png_width} is out of range [200, 10000]")
    params = None
    if args.params is not None:
        try:
            _, params = read_params(args.params, expected_panel=args.panel)
        except ParamFileError as err:
            raise UsageError(str(err)) from None
    out = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output folder {out}: {err.strerror or err}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"output folder {out} is not writable")
    return params, out


def render(args) -> int:
    """Compute a panel headlessly (theory and simulation), then export it."""
    params, out = _check_render_args(args)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.panels import panel_class
    from app.runner import Runner

    app = QApplication.instance() or QApplication(sys.argv[:1])
    runner = Runner()
    panel = panel_class(args.panel)(runner)
    panel.resize(1500, 950)
    # laid out as on screen (titles wrapped, legends placed: a hidden plot is fitted when shown), never
    # shown on a display
    panel.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    panel.show()
    errors: list[str] = []
    runner.failed.connect(lambda _k, label, msg: errors.append(f"{label}: {msg}"))
    if params is not None:
        panel.load_params(params)  # a panel never drawn computes everything on its first parameters
    else:
        panel.refresh()
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while (panel.is_busy() or panel.render_count == 0) and time.monotonic() < deadline and not errors:
        app.processEvents()
        time.sleep(0.005)
    if errors:
        runner.shutdown()
        print(f"edge-of-chaos: {errors[0]}", file=sys.stderr)
        return 1
    paths = panel.export(out, args.png_width)
    runner.shutdown()
    for p in paths:
        print(p)
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (200 <= w <= 7680 and 200 <= h <= 4320):
        raise UsageError(f"--size {text}: width must be in [200, 7680] and height in [200, 4320]")
    return w, h


def animate(args) -> int:
    """Sweep one parameter of a panel headlessly and write the frames as a GIF or an MP4."""
    from app import animate as anim
    from app.panels import NAMES, entry, params_class
    from app.paramsets import ParamFileError, read_params

    if args.panel not in NAMES:
        raise UsageError(f"unknown panel {args.panel!r}; choose from: {', '.join(NAMES)}")
    if entry(args.panel).module is None:
        raise UsageError(f"the {args.panel} panel is not built yet; nothing to animate")
    params = params_class(args.panel)()
    if args.params is not None:
        try:
            _, params = read_params(args.params, expected_panel=args.panel)
        except ParamFileError as err:
            raise UsageError(str(err)) from None
    width, height = _size(args.size)
    if not 0.5 <= args.fps <= 60:
        raise UsageError(f"--fps {args.fps:g}: expected 0.5 to 60")
    try:
        values = anim.check(params, args.param, args.start, args.stop, args.frames, args.out)
    except anim.AnimationError as err:
        raise UsageError(str(err)) from None
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.panels import panel_class
    from app.runner import Runner

    _app = QApplication.instance() or QApplication(sys.argv[:1])  # kept alive while the frames are drawn
    runner = Runner()
    panel = panel_class(args.panel)(runner, params=params)
    if args.plot is not None and args.plot not in panel.plots:
        runner.shutdown()
        panel.deleteLater()
        raise UsageError(f"--plot {args.plot!r}: no such plot in {args.panel} (plots: {', '.join(panel.plots)})")
    panel.resize(width, height)
    panel.show()
    errors: list[str] = []
    runner.failed.connect(lambda _k, label, msg: errors.append(f"{label}: {msg}"))
    shown = 0

    def progress(n: int) -> None:
        nonlocal shown
        if n * 10 // len(values) > shown:
            shown = n * 10 // len(values)
            print(f"edge-of-chaos: frame {n}/{len(values)}", file=sys.stderr, flush=True)

    try:
        images = anim.frames(panel, args.param, values, args.plot, width, theory_only=args.theory_only)
        count = anim.write(args.out, images, args.fps,
                           progress=progress, cancelled=lambda: bool(errors))
    except (anim.AnimationError, OSError) as err:
        print(f"edge-of-chaos: {err}", file=sys.stderr)
        return 1
    finally:
        runner.shutdown()
        panel.close()
        panel.deleteLater()
    if errors or count != len(values):
        print(f"edge-of-chaos: {errors[0] if errors else 'stopped'}; nothing written", file=sys.stderr)
        return 1
    print(args.out)
    return 0


def run_gui() -> int:
    import multiprocessing

    multiprocessing.freeze_support()
    from PySide6.QtWidgets import QApplication

    from app.window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("Edge of Chaos")
    app.setOrganizationName("EdgeOfChaos")
    window = MainWindow()
    window.show()
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:
            return int(exit_.code or 0)
        if args.command == "render":
            return render(args)
        if args.command == "animate":
            return animate(args)
        return run_gui()
    except UsageError as err:
        print(f"edge-of-chaos: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
