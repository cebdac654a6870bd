"""File ▸ Export animation…: which parameter to sweep, from and to what, how many frames, which plot."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QSpinBox,
)

from app.animate import MAX_FRAMES
from app.controls import html_label


def ask(parent, panel) -> tuple | None:
    """(path, param, start, stop, frames, plot or None, theory_only), or None when cancelled."""
    specs = [s for s in panel.Params.specs() if s.kind in (int, float) and s.lo is not None and s.hi is not None]
    if not specs:
        return None
    dialog = QDialog(parent)
    dialog.setWindowTitle(f"Export animation of {panel.title}")
    form = QFormLayout(dialog)
    param = QComboBox()
    for spec in specs:
        param.addItem(spec.label, spec.name)
    start, stop = QDoubleSpinBox(), QDoubleSpinBox()
    frames = QSpinBox()
    frames.setRange(2, MAX_FRAMES)
    frames.setValue(60)
    plot = QComboBox()
    plot.addItem("the whole panel", None)
    for key in panel.plots:
        title = getattr(panel.plots[key].getPlotItem(), "eoc_title", key) if hasattr(panel.plots[key], "getPlotItem") \
            else key
        plot.addItem(title or key, key)
    theory = QCheckBox("frames without the simulation (faster)")
    theory.setChecked(True)

    def ranges() -> None:
        spec = specs[param.currentIndex()]
        decimals = 0 if spec.kind is int else spec.decimals
        current = getattr(panel.params, spec.name)
        for box, value in ((start, spec.lo), (stop, current if current != spec.lo else spec.hi)):
            box.setDecimals(decimals)
            box.setRange(spec.lo, spec.hi)
            box.setValue(value)

    param.currentIndexChanged.connect(ranges)
    ranges()
    form.addRow("Sweep", param)
    form.addRow("from", start)
    form.addRow("to", stop)
    form.addRow("frames", frames)
    form.addRow("of", plot)
    form.addRow("", theory)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    param.setToolTip(html_label(specs[0].label))
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    name = param.currentData()
    path, _ = QFileDialog.getSaveFileName(parent, "Save animation", f"{panel.name}_{name}.mp4",
                                          "MP4 video (*.mp4);;GIF animation (*.gif)")
    if not path:
        return None
    return path, name, start.value(), stop.value(), frames.value(), plot.currentData(), theory.isChecked()
