"""Parameter-set files, session files and the lecture presets. No Qt: the CLI uses this too.

A parameter set is ``{"format": "edge-of-chaos/params", "version": 1, "panel": NAME, "params": {...}}``
(an optional "title" names a preset); a session is ``{"format": "edge-of-chaos/session", "version": 1,
"tab": NAME, "panels": {NAME: {...}, ...}}``. A bad file is refused with :class:`ParamFileError`, whose
message names the field and the problem; nothing is applied until the whole file has been checked.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from app.panels import NAMES, params_class
from core.params import ParamError, Params

PARAMS_FORMAT = "edge-of-chaos/params"
SESSION_FORMAT = "edge-of-chaos/session"
VERSION = 1


class ParamFileError(ValueError):
    """A parameter or session file was refused; the message says where and why."""


def params_document(panel: str, params: Params, title: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": PARAMS_FORMAT, "version": VERSION, "panel": panel}
    if title:
        doc["title"] = title
    doc["params"] = params.to_dict()
    return doc


def session_document(tab: str, params: dict[str, Params], dataset: tuple[str, str] | None = None) -> dict[str, Any]:
    doc = {"format": SESSION_FORMAT, "version": VERSION, "tab": tab,
           "panels": {name: p.to_dict() for name, p in params.items()}}
    if dataset is not None:
        doc["dataset"] = {"images": str(dataset[0]), "labels": str(dataset[1])}
    return doc


def _read_json(source: str | Path) -> Any:
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ParamFileError(f"{path}: cannot be read ({err.__class__.__name__})") from None
    return parse_json(text, str(path))


def parse_json(text: str, where: str = "file") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ParamFileError(f"{where}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") \
            from None


def _check_header(doc: Any, fmt: str, where: str) -> None:
    if not isinstance(doc, dict):
        raise ParamFileError(f"{where}: expected a JSON object with \"format\", got {type(doc).__name__}")
    if doc.get("format") != fmt:
        raise ParamFileError(f"{where}: format is {doc.get('format')!r}, expected {fmt!r}")
    if doc.get("version") != VERSION:
        raise ParamFileError(f"{where}: version {doc.get('version')!r} is not supported (expected {VERSION})")


def _panel_params(panel: Any, values: Any, where: str, base: Params | None = None) -> Params:
    if panel not in NAMES:
        raise ParamFileError(f"{where}: unknown panel {panel!r} (known: {', '.join(NAMES)})")
    cls = params_class(panel)
    if cls is None:
        raise ParamFileError(f"{where}: the {panel} panel is not built yet and has no parameters")
    try:
        return cls.from_dict(values, base=base)
    except ParamError as err:
        raise ParamFileError(f"{where}: {panel}.{err.field}: {err.problem}") from None


def params_from_document(doc: Any, where: str = "parameter set", expected_panel: str | None = None
                         ) -> tuple[str, Params]:
    """Check a parameter-set document; the panel name and its Params."""
    _check_header(doc, PARAMS_FORMAT, where)
    panel = doc.get("panel")
    if expected_panel is not None and panel != expected_panel and panel in NAMES:
        raise ParamFileError(f"{where}: this parameter set is for the {panel!r} panel, not {expected_panel!r}")
    if "params" not in doc:
        raise ParamFileError(f"{where}: missing \"params\"")
    extra = set(doc) - {"format", "version", "panel", "params", "title", "notes"}
    if extra:
        raise ParamFileError(f"{where}: unknown field {sorted(extra)[0]!r}")
    return panel, _panel_params(panel, doc["params"], where)


def read_params(path: str | Path, expected_panel: str | None = None) -> tuple[str, Params]:
    """Read and check a parameter-set file.

    Raises
    ------
    ParamFileError
        Not JSON, wrong format or version, unknown panel, unknown field, wrong type, out of range, NaN.
    """
    return params_from_document(_read_json(path), str(path), expected_panel)


def write_params(path: str | Path, panel: str, params: Params, title: str | None = None) -> Path:
    path = Path(path)
    path.write_text(json.dumps(params_document(panel, params, title), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


@dataclass(frozen=True)
class Session:
    tab: str
    params: dict[str, Params]
    #: The IDX (images, labels) paths opened with File ▸ Open dataset…; None in sessions without one.
    dataset: tuple[str, str] | None = None


def session_from_document(doc: Any, where: str = "session") -> Session:
    _check_header(doc, SESSION_FORMAT, where)
    tab = doc.get("tab")
    if tab not in NAMES:
        raise ParamFileError(f"{where}: tab {tab!r} is not a panel (known: {', '.join(NAMES)})")
    panels = doc.get("panels")
    if not isinstance(panels, dict):
        raise ParamFileError(f"{where}: \"panels\" must be an object mapping panel names to parameters")
    params = {}
    for name, values in panels.items():
        if name in NAMES and params_class(name) is None:
            continue  # a panel not built yet has nothing to restore
        params[name] = _panel_params(name, values, where)
    dataset = doc.get("dataset")
    if dataset is not None:
        if not (isinstance(dataset, dict) and set(dataset) == {"images", "labels"}
                and all(isinstance(v, str) and v for v in dataset.values())):
            raise ParamFileError(f"{where}: \"dataset\" must be {{\"images\": PATH, \"labels\": PATH}}")
        dataset = (dataset["images"], dataset["labels"])
    return Session(tab, params, dataset)


def read_session(path: str | Path) -> Session:
    return session_from_document(_read_json(path), str(path))


def write_session(path: str | Path, tab: str, params: dict[str, Params], dataset: tuple[str, str] | None = None
                  ) -> Path:
    path = Path(path)
    path.write_text(json.dumps(session_document(tab, params, dataset), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path


@dataclass(frozen=True)
class Preset:
    title: str
    panel: str
    params: Params
    notes: str = ""


def presets(panel: str) -> list[Preset]:
    """The lecture presets shipped in resources/presets for ``panel``, sorted by file name."""
    out = []
    for file_name, doc in _preset_documents():
        if doc.get("panel") != panel:
            continue
        name, params = params_from_document(doc, f"preset {file_name}")
        out.append(Preset(doc.get("title", file_name[:-5]), name, params, doc.get("notes", "")))
    return out


@functools.cache
def _preset_documents() -> tuple[tuple[str, dict], ...]:
    """Every shipped preset file's name and JSON document, read once (each tab's first show asks for its
    own, and reading all ~45 files each time cost the GUI 20–50 ms)."""
    folder = resources.files("resources") / "presets"
    return tuple((item.name, parse_json(item.read_text(encoding="utf-8"), f"preset {item.name}"))
                 for item in sorted(folder.iterdir(), key=lambda p: p.name) if item.name.endswith(".json"))
