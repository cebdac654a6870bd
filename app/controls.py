"""A panel's control column, built from its engine's Params declaration.

Numbers get a slider and a box to type in; typing is as good as dragging, and a value the
declaration refuses (out of range, not a number) is refused with a message that names the field,
the control going back to the value in force. Widgets talk to the panel through one callback; the
panel writes back with :meth:`ControlColumn.set_values` with signals blocked (no feedback loops).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSlider,
    QWidget,
)
from superqt import QDoubleSlider
from superqt.utils import signals_blocked

from app.progressive import serve_events
from core.activations import LABELS as PHI_LABELS
from core.params import ParamError, Params, Spec

SLIDER_STEPS = 1000
#: Display names of choice values, where the stored value is an identifier.
CHOICE_LABELS = {
    **PHI_LABELS,
    "none": "none", "dropout": "dropout (keep p)", "gaussian": "Gaussian",
    "orthogonal": "orthogonal", "xi_c": "depth scale ξ_c", "log_chi1": "log χ₁",
    "linear_scale": "linear", "log": "log", "random": "random", "near_exact": "near the exact construction",
}


def html_label(text: str) -> str:
    """'σ_w' → 'σ<sub>w</sub>': subscripts from the declaration's plain-Unicode labels."""
    return re.sub(r"_(\w+)", r"<sub>\1</sub>", text)


def format_value(spec: Spec, value) -> str:
    if spec.kind is int:
        return str(int(value))
    if spec.scale == "log" or (value != 0 and abs(value) < 10 ** (-spec.decimals)):
        return f"{value:.3g}"
    text = f"{value:.{spec.decimals}f}"
    # Only fractional zeros go: "30" with no decimals must not become "3".
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_value(spec: Spec, text: str):
    """The typed text as a number of the field's kind; ParamError when it is not one."""
    text = text.strip().replace("−", "-")
    try:
        value = float(text)
    except ValueError:
        raise ParamError(spec.name, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ParamError(spec.name, f"{text} is not a finite number")
    if spec.kind is int:
        if not value.is_integer():
            raise ParamError(spec.name, f"expected a whole number, got {text}")
        return int(value)
    return value


class NumberControl(QWidget):
    """Slider plus a box to type in, for one int or float parameter."""

    def __init__(self, spec: Spec, commit: Callable[[str, object], None]):
        super().__init__()
        self.spec = spec
        self._commit = commit
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.slider = None
        if spec.lo is not None and spec.hi is not None and (spec.kind is float or spec.hi - spec.lo <= 5000):
            continuous = spec.kind is float or spec.scale == "log"
            self.slider = QDoubleSlider(Qt.Orientation.Horizontal) if continuous \
                else QSlider(Qt.Orientation.Horizontal)
            lo, hi = self._to_slider(spec.lo), self._to_slider(spec.hi)
            if continuous:
                self.slider.setRange(lo, hi)
                self.slider.setSingleStep((hi - lo) / SLIDER_STEPS)
            else:
                self.slider.setRange(int(lo), int(hi))
            self.slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.slider.valueChanged.connect(self._slid)
            self.slider.setAccessibleName(spec.label)
            layout.addWidget(self.slider, 1)
        self.edit = QLineEdit()
        self._fit_box()
        self.edit.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.edit.editingFinished.connect(self._typed)
        self.edit.setAccessibleName(f"{spec.label} value")
        layout.addWidget(self.edit)

    def _fit_box(self) -> None:
        """Room for eight digits in the current font: presentation mode's larger font must not cut them."""
        self.edit.setFixedWidth(self.edit.fontMetrics().horizontalAdvance("0" * 8) + 14)
        if self.slider is not None:
            self.slider.setMinimumWidth(self.edit.width())

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.FontChange:
            self._fit_box()
        super().changeEvent(event)

    def _to_slider(self, value: float) -> float:
        return math.log10(value) if self.spec.scale == "log" else value

    def _from_slider(self, pos: float):
        value = 10.0 ** pos if self.spec.scale == "log" else pos
        if self.spec.kind is int:
            return int(round(value))
        if self.spec.step:
            value = round(value / self.spec.step) * self.spec.step
        value = min(max(value, self.spec.lo), self.spec.hi)
        return float(f"{value:.{max(self.spec.decimals, 6)}g}") if self.spec.scale == "log" \
            else round(value, self.spec.decimals)

    def _slid(self, pos) -> None:
        self._commit(self.spec.name, self._from_slider(pos))

    def _typed(self) -> None:
        if not self.edit.isModified():
            return
        self.edit.setModified(False)
        try:
            value = parse_value(self.spec, self.edit.text())
        except ParamError as err:
            self._commit(self.spec.name, err)
            return
        self._commit(self.spec.name, value)

    def set_value(self, value) -> None:
        with signals_blocked(self.edit):
            self.edit.setText(format_value(self.spec, value))
            self.edit.setModified(False)
        if self.slider is not None:
            with signals_blocked(self.slider):
                pos = self._to_slider(value)
                self.slider.setValue(pos if isinstance(self.slider, QDoubleSlider) else int(round(pos)))


class ChoiceControl(QComboBox):
    def __init__(self, spec: Spec, commit: Callable[[str, object], None]):
        super().__init__()
        self.spec = spec
        for choice in spec.choices:
            self.addItem(CHOICE_LABELS.get(choice, str(choice)), choice)
        self.currentIndexChanged.connect(lambda i: commit(spec.name, self.itemData(i)))
        self.setAccessibleName(spec.label)

    def set_value(self, value) -> None:
        with signals_blocked(self):
            self.setCurrentIndex(max(0, self.findData(value)))


class FlagControl(QCheckBox):
    def __init__(self, spec: Spec, commit: Callable[[str, object], None]):
        super().__init__()
        self.spec = spec
        self.toggled.connect(lambda on: commit(spec.name, bool(on)))

    def set_value(self, value) -> None:
        with signals_blocked(self):
            self.setChecked(bool(value))


def make_control(spec: Spec, commit: Callable[[str, object], None]) -> QWidget:
    if spec.kind is bool:
        return FlagControl(spec, commit)
    if spec.choices is not None:
        return ChoiceControl(spec, commit)
    return NumberControl(spec, commit)


class ControlColumn(QWidget):
    """One labelled control per declared parameter, plus a line for refusals."""

    def __init__(self, params_cls: type[Params], on_change: Callable[[str, object], None],
                 hidden: tuple[str, ...] = ()):
        super().__init__()
        self._on_change = on_change
        self.form = QFormLayout(self)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.controls: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        for spec in params_cls.specs():
            if spec.name in hidden:
                continue
            serve_events()
            control = make_control(spec, self._commit)
            label = QLabel(html_label(spec.label) + (f" [{spec.unit}]" if spec.unit else ""))
            label.setTextFormat(Qt.TextFormat.RichText)
            if spec.help:
                label.setToolTip(spec.help)
                control.setToolTip(spec.help)
            label.setBuddy(control)
            self.form.addRow(label, control)
            self.controls[spec.name] = control
            self.labels[spec.name] = label
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c0392b; font-weight: bold;")
        self.message.setAccessibleName("control message")
        self.form.addRow(self.message)

    def _commit(self, name: str, value) -> None:
        self._on_change(name, value)

    def set_values(self, params: Params) -> None:
        for name, control in self.controls.items():
            control.set_value(getattr(params, name))

    def show_refusal(self, text: str) -> None:
        self.message.setText(text)

    def clear_refusal(self) -> None:
        self.message.setText("")

    def set_visible(self, name: str, visible: bool) -> None:
        if name in self.controls:
            self.form.setRowVisible(self.controls[name], visible)
