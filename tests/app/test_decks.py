"""Lecture decks: the shipped ones are valid, a bad one is refused naming the step and the field, and a
presenter's clicker (PageDown/PageUp/→/←) steps through a deck whatever has the focus."""

from __future__ import annotations

import copy
import json

import pytest
from PySide6.QtCore import Qt

from app.decks import DECK_FORMAT, read_deck, shipped
from app.paramsets import ParamFileError, presets
from core.propagation import PropagationParams

#: Small networks: the steps' simulations stay cheap.
SMALL = {"width": 40, "depth": 8, "seeds": 1}
DECK = {
    "format": DECK_FORMAT, "version": 1, "title": "test deck",
    "steps": [
        {"panel": "propagation", "params": {**SMALL, "sigma_w": 1.1, "sigma_b": 0.2}, "caption": "ordered"},
        {"panel": "propagation", "params": {**SMALL, "sigma_w": 2.7, "sigma_b": 0.4}, "caption": "chaotic"},
        {"panel": "propagation", "params": {**SMALL, "sigma_w": 1.6, "phi": "relu"}, "caption": "relu, exploding"},
    ],
}


def write(tmp_path, doc, name="deck.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_every_shipped_deck_names_presets_and_parameters_that_exist():
    decks = shipped()
    assert {p.name[:10] for p in decks} >= {"lecture_01", "lecture_02", "lecture_03", "lecture_04", "lecture_09",
                                            "lecture_13", "lecture_lo"}
    for path in decks:
        deck = read_deck(path)
        raw = json.loads(path.read_text(encoding="utf-8"))["steps"]
        assert len(deck.steps) == len(raw) >= 3
        for step, doc in zip(deck.steps, raw, strict=True):
            assert step.caption and len(step.caption) <= 160
            if "preset" in doc:  # the step carries exactly the preset's parameters
                matching = [p for p in presets(step.panel) if p.title == step.preset]
                assert matching and matching[0].params == step.params, (path.name, doc["preset"])


def _broken(mutate):
    doc = copy.deepcopy(DECK)
    mutate(doc)
    return doc


def _preset_instead(step: dict, name: str) -> None:
    del step["params"]
    step["preset"] = name


BAD_DECKS = [
    (lambda d: d.update(format="edge-of-chaos/params"), "format"),
    (lambda d: d.update(steps=[]), "steps"),
    (lambda d: d.pop("title"), "title"),
    (lambda d: d["steps"][1].update(panel="nonsense"), "step 2: panel"),
    (lambda d: d["steps"][1].pop("caption"), "step 2: caption"),
    (lambda d: d["steps"][1].update(caption="x" * 500), "step 2: caption"),
    (lambda d: d["steps"][1].update(preset="propagation_02_poole_tanh_critical"), "step 2: give either"),
    (lambda d: d["steps"][2].pop("params"), "step 3: give either"),
    (lambda d: d["steps"][2].update(params={"sigma_w": 99.0}), "step 3: params: propagation.sigma_w"),
    (lambda d: d["steps"][2].update(params={"sigma_q": 1.0}), "step 3: params: propagation.sigma_q"),
    (lambda d: _preset_instead(d["steps"][0], "no_such_preset"), "step 1: preset: no preset 'no_such_preset'"),
    (lambda d: _preset_instead(d["steps"][0], "spectra_05_marchenko_pastur"), "step 1: preset"),
    (lambda d: d["steps"][1].update(slide=3), "step 2: unknown field 'slide'"),
]


@pytest.mark.parametrize("mutate, where", BAD_DECKS)
def test_a_bad_deck_is_refused_naming_the_step_and_the_field(tmp_path, mutate, where):
    with pytest.raises(ParamFileError) as err:
        read_deck(write(tmp_path, _broken(mutate)))
    assert where in str(err.value)


def test_clicker_keys_step_through_a_deck_whatever_has_the_focus(window, qtbot, tmp_path):
    assert window.open_deck(str(write(tmp_path, DECK)))
    panel = window.current_panel()
    assert window.current_name() == "propagation" and window.deck_index == 0
    assert (panel.params.sigma_w, panel.params.sigma_b) == (1.1, 0.2)
    assert window.caption.isVisible() and "ordered" in window.caption.text()

    slider = panel.controls.controls["sigma_w"].slider
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_PageDown)        # a slider would take PageDown for itself
    assert window.deck_index == 1 and (panel.params.sigma_w, panel.params.sigma_b) == (2.7, 0.4)
    assert "chaotic" in window.caption.text()
    box = panel.controls.controls["sigma_b"].edit
    box.setFocus()
    qtbot.keyClick(box, Qt.Key.Key_Right)              # in a text box → would move the cursor
    assert window.deck_index == 2 and panel.params.phi == "relu" and panel.params.sigma_w == 1.6
    assert panel.params.sigma_b == PropagationParams().sigma_b  # a step's params start from the defaults
    qtbot.keyClick(box, Qt.Key.Key_PageDown)           # past the end: stays on the last step
    assert window.deck_index == 2
    qtbot.keyClick(slider, Qt.Key.Key_PageUp)
    qtbot.keyClick(window.tabs, Qt.Key.Key_Left)
    assert window.deck_index == 0 and (panel.params.sigma_w, panel.params.sigma_b) == (1.1, 0.2)

    window.set_presentation(True)                      # the caption stays on screen, larger
    assert window.caption.isVisible() and "22pt" in window.caption.styleSheet()
    window.set_presentation(False)


def test_a_bad_deck_leaves_everything_as_it_was(window, tmp_path):
    assert window.open_deck(str(write(tmp_path, DECK, "good.json")))
    qparams, tab, caption = window.current_panel().params, window.current_name(), window.caption.text()
    for mutate, where in BAD_DECKS[3:]:
        assert not window.open_deck(str(write(tmp_path, _broken(mutate), "bad.json")))
        assert where in window.last_error and "Nothing was changed" in window.last_error
        assert window.deck.title == "test deck" and window.deck_index == 0
        assert window.current_name() == tab and window.current_panel().params == qparams
        assert window.caption.text() == caption
    assert not window.open_deck(str(tmp_path / "missing.json"))
    assert "no such file" in window.last_error
