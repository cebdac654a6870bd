"""How a control shows a value: whole numbers keep their zeros, fractions lose only trailing ones."""

from __future__ import annotations

from app.controls import format_value
from core.params import Spec


def spec(decimals: int, kind=float, scale: str = "linear") -> Spec:
    return Spec(name="x", kind=kind, default=kind(1), label="x", decimals=decimals, scale=scale)


def test_whole_numbers_keep_their_trailing_zeros_when_no_decimals_are_shown():
    assert format_value(spec(0), 30.0) == "30"
    assert format_value(spec(0), 100.0) == "100"


def test_fractions_drop_only_trailing_zeros():
    assert format_value(spec(3), 0.250) == "0.25"
    assert format_value(spec(3), 30.0) == "30"
    assert format_value(spec(2), 1.5) == "1.5"


def test_integers_and_log_scales():
    assert format_value(spec(0, kind=int), 20) == "20"
    assert format_value(spec(3, scale="log"), 0.000123) == "0.000123"


def test_the_typing_box_grows_with_the_font_so_presentation_mode_does_not_cut_its_digits(qtbot):
    from PySide6.QtGui import QFont

    from app.controls import NumberControl

    control = NumberControl(Spec(name="x", kind=float, default=1.0, label="x", lo=0.0, hi=10.0), lambda *a: None)
    qtbot.addWidget(control)
    small = control.edit.width()
    font = QFont(control.font())
    font.setPointSize(font.pointSize() * 2)
    control.setFont(font)
    assert control.edit.width() > 1.5 * small
    assert control.edit.width() >= control.edit.fontMetrics().horizontalAdvance("0.000125")
