"""The tabs, in the order the mission names them, and where each one's Params come from.

``PANELS`` is the single list the window, the parameter-set files and the CLI read. A panel whose
``module`` is None is not built yet: its tab says so plainly.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from core.params import Params


@dataclass(frozen=True)
class PanelEntry:
    name: str
    title: str
    module: str | None = None      # app.panels.<module> holds the Panel subclass `cls`
    cls: str | None = None
    params: str | None = None      # "core.module:ParamsClass" (importable without Qt)
    planned: str = ""


PANELS: tuple[PanelEntry, ...] = (
    PanelEntry("depth", "Depth & Sawtooth", "app.panels.depth", "DepthPanel", "core.depth:DepthParams"),
    PanelEntry("propagation", "Signal Propagation", "app.panels.propagation", "PropagationPanel",
               "core.propagation:PropagationParams"),
    PanelEntry("spectra", "Jacobian Spectra", "app.panels.spectra", "SpectraPanel", "core.spectra:SpectraParams"),
    PanelEntry("optimizers", "Optimizers", "app.panels.optimizers", "OptimizersPanel",
               "core.optimizers.settings:OptimizersParams"),
    PanelEntry("landscape", "Loss Landscape", "app.panels.landscape", "LandscapePanel",
               "core.landscape:LandscapeParams"),
    PanelEntry("pruning", "Pruning", "app.panels.pruning", "PruningPanel", "core.pruning:PruningParams"),
    PanelEntry("robustness", "Robustness", "app.panels.robustness", "RobustnessPanel",
               "core.robustness:RobustnessParams"),
)

NAMES = tuple(p.name for p in PANELS)


def entry(name: str) -> PanelEntry:
    for p in PANELS:
        if p.name == name:
            return p
    raise KeyError(f"unknown panel {name!r}; choose from: {', '.join(NAMES)}")


def params_class(name: str) -> type[Params] | None:
    """The Params class of panel ``name`` (None for a panel not built yet), without importing Qt."""
    spec = entry(name).params
    if spec is None:
        return None
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)


def panel_class(name: str):
    """The Panel subclass for ``name`` (a PlaceholderPanel subclass for one not built yet)."""
    e = entry(name)
    if e.module is None:
        # By name, like every panel module: this registry sits below base (base → paramsets → here),
        # so a static import of base would close the circle app.panels → base → paramsets → app.panels.
        placeholder = importlib.import_module("app.panels.base").PlaceholderPanel
        return type(f"{e.name.title()}Placeholder", (placeholder,),
                    {"name": e.name, "title": e.title, "planned": e.planned})
    return getattr(importlib.import_module(e.module), e.cls)
