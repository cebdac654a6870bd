"""Lecture decks: a JSON sequence of steps (a panel, a preset or a parameter set, a caption) that a
presenter's clicker steps through. No Qt: checked here, shown by :meth:`app.window.MainWindow.open_deck`.

A deck is ``{"format": "edge-of-chaos/deck", "version": 1, "title": "…", "steps": [{"panel": NAME,
"preset": NAME | "params": {...}, "caption": "…"}, …]}``. ``preset`` names a shipped preset of that panel
by its file name without ``.json`` (``propagation_02_poole_tanh_critical``) or by its title; ``params``
holds parameters for that panel (the fields it leaves out take their defaults). A bad deck is refused
with :class:`app.paramsets.ParamFileError`, whose message names the step and the field; nothing is
applied until every step has been checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from app.panels import NAMES, params_class
from app.paramsets import ParamFileError, _check_header, _panel_params, _read_json, params_from_document, parse_json
from core.params import Params

DECK_FORMAT = "edge-of-chaos/deck"
#: A caption is read from the back of a lecture hall: one short line or two.
MAX_CAPTION = 160
STEP_FIELDS = {"panel", "preset", "params", "caption"}


@dataclass(frozen=True)
class Step:
    panel: str
    params: Params
    caption: str
    #: The preset's title when the step names one.
    preset: str = ""


@dataclass(frozen=True)
class Deck:
    title: str
    steps: tuple[Step, ...]


def _preset_params(panel: str, name: Any, where: str) -> tuple[Params, str]:
    """The params and title of the shipped preset ``name`` (a file stem or a title) of ``panel``."""
    if not isinstance(name, str) or not name:
        raise ParamFileError(f"{where}: preset: expected the name of a preset, got {name!r}")
    folder = resources.files("resources") / "presets"
    known = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".json"):
            continue
        doc = parse_json(item.read_text(encoding="utf-8"), f"preset {item.name}")
        stem, title = item.name[:-5], doc.get("title", item.name[:-5])
        if doc.get("panel") == panel:
            known.append(stem)
        if name in (stem, title):
            owner, params = params_from_document(doc, f"preset {item.name}")
            if owner != panel:
                raise ParamFileError(f"{where}: preset: {name!r} is a preset of the {owner} panel, not {panel}")
            return params, title
    raise ParamFileError(f"{where}: preset: no preset {name!r} for {panel} (known: {', '.join(known) or 'none'})")


def step_from_document(doc: Any, where: str) -> Step:
    if not isinstance(doc, dict):
        raise ParamFileError(f"{where}: expected an object with \"panel\" and \"caption\", got {type(doc).__name__}")
    extra = set(doc) - STEP_FIELDS
    if extra:
        raise ParamFileError(f"{where}: unknown field {sorted(extra)[0]!r} (known: {', '.join(sorted(STEP_FIELDS))})")
    panel = doc.get("panel")
    if panel not in NAMES:
        raise ParamFileError(f"{where}: panel: unknown panel {panel!r} (known: {', '.join(NAMES)})")
    if params_class(panel) is None:
        raise ParamFileError(f"{where}: panel: the {panel} panel is not built yet")
    caption = doc.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise ParamFileError(f"{where}: caption: expected a short text, got {caption!r}")
    if len(caption) > MAX_CAPTION:
        raise ParamFileError(f"{where}: caption: {len(caption)} characters, at most {MAX_CAPTION} fit on screen")
    if ("preset" in doc) == ("params" in doc):
        which = "both" if "preset" in doc else "neither"
        raise ParamFileError(f"{where}: give either \"preset\" or \"params\", not {which}")
    if "preset" in doc:
        params, title = _preset_params(panel, doc["preset"], where)
        return Step(panel, params, caption.strip(), title)
    return Step(panel, _panel_params(panel, doc["params"], f"{where}: params"), caption.strip())


def deck_from_document(doc: Any, where: str = "deck") -> Deck:
    """Check a deck document; the Deck. Raises ParamFileError naming the step and the field."""
    _check_header(doc, DECK_FORMAT, where)
    extra = set(doc) - {"format", "version", "title", "steps", "notes"}
    if extra:
        raise ParamFileError(f"{where}: unknown field {sorted(extra)[0]!r}")
    title = doc.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ParamFileError(f"{where}: title: expected a text, got {title!r}")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ParamFileError(f"{where}: steps: expected a non-empty list of steps")
    return Deck(title.strip(), tuple(step_from_document(s, f"{where}: step {i + 1}") for i, s in enumerate(steps)))


def read_deck(path: str | Path) -> Deck:
    """Read and check a deck file (see the module docstring)."""
    return deck_from_document(_read_json(path), str(path))


def shipped() -> list[Path]:
    """The lecture decks in resources/decks, sorted by file name."""
    folder = resources.files("resources") / "decks"
    return sorted((Path(str(item)) for item in folder.iterdir() if item.name.endswith(".json")),
                  key=lambda p: p.name)
