"""How an engine declares its parameters, and how a dict of values is checked against them.

Each engine owns one frozen dataclass deriving from :class:`Params`. Every field is made with
:func:`param`, which records its label, range, step, scale and choices. The control column, the
parameter-set file, the CLI and validation are all derived from that one declaration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self


class ParamError(ValueError):
    """A parameter value was refused; ``field`` names it and ``problem`` says why."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class Spec:
    """What a control needs to know about one parameter."""

    name: str
    kind: type
    default: Any
    label: str
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    scale: str = "linear"
    choices: tuple | None = None
    unit: str = ""
    help: str = ""
    decimals: int = 3


def param(
    default: Any,
    label: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    step: float | None = None,
    scale: str = "linear",
    choices: tuple | None = None,
    unit: str = "",
    help: str = "",
    decimals: int = 3,
) -> Any:
    """A dataclass field carrying its own control description in ``metadata["spec"]``."""
    meta = dict(label=label, lo=lo, hi=hi, step=step, scale=scale, choices=choices, unit=unit,
                help=help, decimals=decimals)
    return dataclasses.field(default=default, metadata={"spec": meta})


def _coerce(spec: Spec, value: Any) -> Any:
    """The value in the field's type, or ParamError naming what is wrong with it."""
    kind = spec.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise ParamError(spec.name, f"expected true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ParamError(spec.name, f"expected text, got {value!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ParamError(spec.name, f"{value!r} is not one of {', '.join(map(str, spec.choices))}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamError(spec.name, f"expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(spec.name, f"{value} is not a finite number")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ParamError(spec.name, f"expected a whole number, got {value}")
        value = int(value)
    else:
        value = float(value)
    if spec.lo is not None and value < spec.lo or spec.hi is not None and value > spec.hi:
        lo = "-∞" if spec.lo is None else f"{spec.lo:g}"
        hi = "∞" if spec.hi is None else f"{spec.hi:g}"
        raise ParamError(spec.name, f"{value:g} is out of range [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class Params:
    """Base of every engine's parameters: validated on construction, immutable afterwards."""

    def __post_init__(self) -> None:
        for spec in self.specs():
            object.__setattr__(self, spec.name, _coerce(spec, getattr(self, spec.name)))
        self.check()

    def check(self) -> None:
        """Cross-field rules; subclasses raise ParamError here."""

    @classmethod
    def specs(cls) -> tuple[Spec, ...]:
        """The declaration of every field, in order."""
        out = []
        for f in dataclasses.fields(cls):
            meta = f.metadata.get("spec")
            if meta is None:
                continue
            out.append(Spec(name=f.name, kind=type(f.default), default=f.default, **meta))
        return tuple(out)

    @classmethod
    def spec(cls, name: str) -> Spec:
        for s in cls.specs():
            if s.name == name:
                return s
        raise ParamError(name, "no such parameter")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Params | None = None) -> Self:
        """Parameters from a plain mapping; fields it leaves out keep ``base``'s (or default) values.

        Raises
        ------
        ParamError
            Naming the first unknown field, wrong type, out-of-range or non-finite value.
        """
        if not isinstance(data, Mapping):
            raise ParamError("params", f"expected an object of named values, got {type(data).__name__}")
        names = {s.name for s in cls.specs()}
        for key in data:
            if key not in names:
                raise ParamError(str(key), f"unknown parameter (known: {', '.join(sorted(names))})")
        values = (base or cls()).to_dict()
        values.update(data)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {s.name: getattr(self, s.name) for s in self.specs()}

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated; ParamError leaves ``self`` untouched."""
        unknown = [k for k in changes if k not in {s.name for s in self.specs()}]
        if unknown:
            raise ParamError(unknown[0], "unknown parameter")
        return dataclasses.replace(self, **changes)
