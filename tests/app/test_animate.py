"""`edge-of-chaos animate`: a GIF and an MP4 with the frames asked for, each frame the panel at the next
value; bad arguments end with exit status 2 and one line."""

from __future__ import annotations

import gc
import json
import warnings

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest

from app import animate
from app import main as cli
from app.animate import sweep
from core.propagation import PropagationParams


@pytest.fixture
def small_params(tmp_path):
    """A cheap propagation panel (the frames wait for theory only, but the panel builds as usual)."""
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"format": "edge-of-chaos/params", "version": 1, "panel": "propagation",
                                "params": {"width": 40, "depth": 8, "seeds": 1}}))
    return path


def frames_of(path) -> np.ndarray:
    if path.suffix == ".gif":
        return np.stack([np.asarray(f)[..., :3] for f in imageio.mimread(path)])
    with warnings.catch_warnings():  # imageio-ffmpeg leaves its pipes to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        frames = imageio_ffmpeg.read_frames(str(path))
        meta = next(frames)
        w, h = meta["size"]
        out = np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in frames])
        del frames
        gc.collect()
    return out


@pytest.mark.parametrize("suffix, plot", [(".gif", "variance_map"), (".mp4", None)])
def test_animate_writes_the_frames_asked_for_each_one_different(qapp, tmp_path, small_params, capsys, suffix, plot):
    out = tmp_path / f"sweep{suffix}"
    args = ["animate", "propagation", "--param", "sigma_w", "--from", "0.8", "--to", "2.4", "--frames", "5",
            "--out", str(out), "--params", str(small_params), "--theory-only", "--size", "640x360"]
    if plot:
        args += ["--plot", plot]
    assert cli.main(args) == 0, capsys.readouterr().err
    frames = frames_of(out)
    assert frames.shape[0] == 5
    if plot is None:  # the whole panel, padded to ffmpeg's 16-pixel blocks
        assert frames.shape[1:3] == (368, 640)
    else:
        assert frames.shape[2] == 640
    change = [np.abs(frames[i + 1].astype(int) - frames[i].astype(int)).mean() for i in range(4)]
    assert min(change) > 0.05, change  # σ_w moves every curve: no two frames alike


def _heatmap_frames(n: int) -> list[np.ndarray]:
    """Frames like a panel's: a smooth colour map (with its full colour bar) under a moving curve."""
    import pyqtgraph as pg

    lut = pg.colormap.get("viridis").getLookupTable(0.0, 1.0, 256)
    h, w = 120, 200
    field = np.add.outer(np.linspace(0, 180, h), np.linspace(0, 75, w)).astype(int)
    frames = []
    for k in range(n):
        f = np.full((h, w + 20, 3), 255, np.uint8)
        f[:, :w] = lut[(field + 3 * k) % 256]
        f[:, w + 5:w + 15] = lut[np.linspace(255, 0, h).astype(int)][:, None]    # the colour bar
        f[(40 + 5 * k) % h, :w] = (0, 0, 0)                                      # a curve that moves
        frames.append(f)
    return frames


def test_gif_frames_keep_their_colours_even_ones_the_first_frame_lacked(tmp_path):
    frames = _heatmap_frames(6)
    frames[4][10:40, 10:60] = (230, 20, 30)           # a red warning no earlier frame had
    out = tmp_path / "colours.gif"
    assert animate.write(out, iter(frames)) == 6
    back = frames_of(out)
    assert back.shape == (6, *frames[0].shape)
    error = [np.abs(b.astype(int) - f).mean() for b, f in zip(back, frames, strict=True)]
    # 256 colours for a 256-level colour map and a few greys: within about a level on average
    assert max(error) < 2.0, error
    assert np.abs(back[4][10:40, 10:60].astype(int) - (230, 20, 30)).max() <= 8


def test_a_cancelled_gif_leaves_no_file(tmp_path):
    out = tmp_path / "cancelled.gif"
    seen = []
    assert animate.write(out, iter(_heatmap_frames(4)), progress=seen.append, cancelled=lambda: len(seen) >= 2) == 0
    assert seen == [1, 2] and not out.exists()


def test_sweep_values_follow_the_parameters_scale():
    assert sweep(PropagationParams.spec("sigma_w"), 1.0, 2.0, 5) == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert sweep(PropagationParams.spec("depth"), 1, 10, 4) == [1, 4, 7, 10]


@pytest.mark.parametrize("change, message", [
    ({"--param": "sigma_q"}, "--param 'sigma_q': no such parameter"),
    ({"--param": "phi"}, "--param phi: only numbers can be swept"),
    ({"--to": "40"}, "--to 40: 40 is out of range"),
    ({"--frames": "1"}, "--frames 1: expected 2 to"),
    ({"--out": "sweep.avi"}, "must end in .gif or .mp4"),
    ({"--size": "big"}, "--size 'big'"),
    ({"panel": "nonsense"}, "unknown panel 'nonsense'"),
    ({"--plot": "nothing"}, "--plot 'nothing': no such plot in propagation"),
])
def test_bad_animate_arguments_exit_2_with_one_line(qapp, tmp_path, capsys, change, message):
    opts = {"panel": "propagation", "--param": "sigma_w", "--from": "1", "--to": "2", "--frames": "3",
            "--out": str(tmp_path / "x.gif"), **change}
    if opts["--out"] == "sweep.avi":
        opts["--out"] = str(tmp_path / "sweep.avi")
    argv = ["animate", opts.pop("panel")] + [v for kv in opts.items() for v in kv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.gif").exists()


def test_a_plots_frames_keep_one_size_when_the_panel_gives_it_more_room_mid_sweep(qtbot):
    # The plot grid gave the plot a few pixels more or less as the swept σ_w changed its neighbours'
    # tick labels (298 px, then 306): the frames did not stack into one animation. Here the panel widens
    # by 40 px between frames instead, which moves the plot's width the same way, every time.
    from app import animate
    from app.panels import panel_class
    from app.runner import Runner

    runner = Runner()
    panel = panel_class("propagation")(runner, params=PropagationParams(width=40, depth=8, seeds=1))
    qtbot.addWidget(panel)
    panel.resize(640, 360)
    panel.show()
    qtbot.waitExposed(panel)
    widget = panel.plots["variance_map"]
    widths = []
    try:
        shots = []
        for i, frame in enumerate(animate.frames(panel, "sigma_w", [0.8, 1.2, 1.6], "variance_map", 640,
                                                 theory_only=True)):
            shots.append(frame.shape)
            widths.append(widget.width())
            panel.resize(640 + 40 * (i + 1), 360)
            qtbot.wait(50)                     # the layout takes the new room
        assert len(set(shots)) == 1, shots
        assert len(set(widths)) == 1, widths
        qtbot.waitUntil(lambda: widget.width() > widths[0], timeout=5000)  # let go after the last frame
    finally:
        runner.shutdown()
