"""Parameter-set and session files: round trips, and every kind of bad file refused by name."""

from __future__ import annotations

import json

import pytest

from app.panels import NAMES, params_class
from app.paramsets import (
    ParamFileError,
    presets,
    read_params,
    read_session,
    write_params,
    write_session,
)
from core.propagation import PropagationParams


def _doc(**params):
    return {"format": "edge-of-chaos/params", "version": 1, "panel": "propagation", "params": params}


def test_round_trip(tmp_path):
    p = PropagationParams(phi="relu", sigma_w=1.2, depth=12, noise="dropout", keep_prob=0.7)
    path = write_params(tmp_path / "a.json", "propagation", p)
    assert read_params(path) == ("propagation", p)


def test_session_round_trip(tmp_path):
    p = PropagationParams(sigma_b=0.4)
    path = write_session(tmp_path / "s.json", "propagation", {"propagation": p})
    session = read_session(path)
    assert session.tab == "propagation" and session.params["propagation"] == p


BAD = [
    ("not json", "{ nope", "not valid JSON"),
    ("wrong format", json.dumps({"format": "something/else", "version": 1}), "format"),
    ("wrong version", json.dumps({**_doc(), "version": 7}), "version 7"),
    ("unknown panel", json.dumps({**_doc(), "panel": "telepathy"}), "unknown panel 'telepathy'"),
    ("unknown field", json.dumps(_doc(colour="red")), "propagation.colour: unknown parameter"),
    ("wrong type", json.dumps(_doc(depth="deep")), "propagation.depth: expected a number"),
    ("out of range", json.dumps(_doc(sigma_w=99)), "propagation.sigma_w: 99 is out of range"),
    ("NaN", '{"format": "edge-of-chaos/params", "version": 1, "panel": "propagation", '
     '"params": {"sigma_b": NaN}}', "propagation.sigma_b: nan is not a finite number"),
    ("bad choice", json.dumps(_doc(phi="sine")), "propagation.phi: 'sine' is not one of"),
    ("not an object", "[1, 2]", "expected a JSON object"),
    ("params not an object", json.dumps({**_doc(), "params": [1]}), "expected an object"),
]


@pytest.mark.parametrize(("case", "text", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_parameter_files_are_refused_with_a_message_naming_the_problem(tmp_path, case, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ParamFileError) as err:
        read_params(path)
    assert words in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ParamFileError, match="no such file"):
        read_params(tmp_path / "missing.json")


def test_a_set_for_another_panel_is_refused_when_one_is_expected(tmp_path):
    path = write_params(tmp_path / "a.json", "propagation", PropagationParams())
    with pytest.raises(ParamFileError, match="not 'spectra'"):
        read_params(path, expected_panel="spectra")


def test_every_shipped_preset_is_valid_and_named():
    seen = 0
    for name in NAMES:
        if params_class(name) is None:
            continue
        for preset in presets(name):
            assert preset.title and preset.panel == name
            seen += 1
    assert seen >= 8
