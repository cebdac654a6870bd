"""The Params declaration: types, ranges, non-finite values and unknown names are refused by name."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from core.params import ParamError, Params, param


@dataclass(frozen=True)
class Demo(Params):
    sigma_w: float = param(1.0, "σ_w", lo=0.05, hi=4.0)
    depth: int = param(10, "depth L", lo=1, hi=200)
    phi: str = param("tanh", "φ", choices=("tanh", "relu"))
    on: bool = param(False, "flag")


def test_defaults_and_specs_follow_the_declaration():
    d = Demo()
    assert d.to_dict() == {"sigma_w": 1.0, "depth": 10, "phi": "tanh", "on": False}
    spec = Demo.spec("sigma_w")
    assert (spec.label, spec.lo, spec.hi, spec.kind) == ("σ_w", 0.05, 4.0, float)


def test_integers_are_accepted_for_floats_and_whole_floats_for_ints():
    d = Demo.from_dict({"sigma_w": 2, "depth": 12.0})
    assert d.sigma_w == 2.0 and isinstance(d.sigma_w, float)
    assert d.depth == 12 and isinstance(d.depth, int)


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"sigma_w": 5.0}, "sigma_w", "out of range"),
        ({"sigma_w": math.nan}, "sigma_w", "finite"),
        ({"sigma_w": math.inf}, "sigma_w", "finite"),
        ({"sigma_w": "big"}, "sigma_w", "number"),
        ({"sigma_w": True}, "sigma_w", "number"),
        ({"depth": 2.5}, "depth", "whole"),
        ({"depth": 0}, "depth", "out of range"),
        ({"phi": "sin"}, "phi", "not one of"),
        ({"on": 1}, "on", "true or false"),
        ({"width": 3}, "width", "unknown"),
    ],
)
def test_bad_values_are_refused_naming_the_field(values, field, words):
    with pytest.raises(ParamError) as err:
        Demo.from_dict(values)
    assert err.value.field == field
    assert words in err.value.problem


def test_replace_validates_and_leaves_the_original_untouched():
    d = Demo()
    with pytest.raises(ParamError):
        d.replace(sigma_w=-1.0)
    assert d.sigma_w == 1.0
    assert d.replace(sigma_w=2.0).sigma_w == 2.0


def test_from_dict_keeps_base_values_for_missing_fields():
    base = Demo(sigma_w=3.0)
    assert Demo.from_dict({"depth": 5}, base=base).sigma_w == 3.0
