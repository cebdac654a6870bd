"""README's "Use the engines from Python": every example there runs, and its own assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use the engines from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_has_an_example_per_engine():
    blocks = _examples()
    for engine in ("propagation", "spectra", "depth"):
        assert any(f"from core import {engine}" in b for b in blocks), engine


@pytest.mark.parametrize("index", range(3))
def test_an_example_runs_as_printed(index, capsys):
    code = _examples()[index]
    exec(compile(code, f"README.md example {index + 1}", "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out.strip(), "each example prints what it shows"
