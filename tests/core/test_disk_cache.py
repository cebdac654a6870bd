"""The per-activation tables kept on disk between launches: read back bit for bit, never trusted when damaged
or foreign, and never written for a φ the registry did not make."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import core.propagation as prop
from core import activations, disk_cache
from core.propagation import tabulation

SW = np.linspace(0.5, 3.0, 24)
SB = np.linspace(0.0, 0.4, 9)


def _forget():
    """Drop the in-memory tables, so the next use reads the disk (or builds)."""
    for cached in (tabulation._build_moments, tabulation._build_table, tabulation._build_ctable, tabulation._entry):
        cached.cache_clear()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_OF_CHAOS_CACHE", str(tmp_path))
    _forget()
    yield tmp_path / "tables"
    _forget()


def _tables(phi):
    key = tabulation._Key(activations.resolve(phi))
    return tabulation._table(key), tabulation._ctable(key, 1.0)


def _fields(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


@pytest.mark.parametrize("phi", ["tanh", "relu"])
def test_tables_read_back_equal_the_built_ones_exactly(cache, phi):
    built_table, built_ctable = _tables(phi)
    built_pd = prop.phase_diagram(phi, SW, SB)
    assert [p.name.startswith(phi) for p in cache.iterdir()] == [True]

    _forget()
    read_table, read_ctable = _tables(phi)
    for name, value in (_fields(built_table) | _fields(built_ctable)).items():
        got = getattr(read_table, name) if hasattr(read_table, name) else getattr(read_ctable, name)
        assert type(got) is type(value), name         # i1 indexes rows: an int, not a float
        np.testing.assert_array_equal(got, value, err_msg=name)
    read_pd = prop.phase_diagram(phi, SW, SB)
    for name in ("chi1", "xi_c", "xi_q", "q_star", "c_star"):
        np.testing.assert_array_equal(getattr(read_pd, name), getattr(built_pd, name), err_msg=name)


def test_a_launch_with_the_entry_present_builds_nothing(cache, monkeypatch):
    _tables("tanh")
    _forget()

    def no_build(*args, **kwargs):
        raise AssertionError("the tables were built again although the disk holds them")

    monkeypatch.setattr(tabulation, "_mehler_weights", no_build)
    monkeypatch.setattr(tabulation, "_solve_ctable", no_build)
    pd = prop.phase_diagram("tanh", SW, SB)
    # Poole et al. 2016, Fig. 2: tanh at σ_b = 0 is critical at σ_w = 1 (χ₁ = 1), chaotic above.
    row = pd.chi1[0]
    assert row[SW < 0.9].max() < 1.0 < row[SW > 1.1].min()


@pytest.mark.parametrize("damage", [b"", b"not a safetensors file", None])
def test_a_damaged_entry_is_a_miss_and_is_written_again(cache, damage):
    built, _ = _tables("tanh")
    (entry,) = cache.iterdir()
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2] if damage is None else damage)
    _forget()
    again, _ = _tables("tanh")
    np.testing.assert_array_equal(again.s1, built.s1)
    assert entry.stat().st_size == len(data)


def test_an_entry_of_another_fingerprint_is_not_read(cache, monkeypatch):
    _tables("tanh")
    (entry,) = cache.iterdir()
    label, digest = tabulation._entry(tabulation._Key(activations.get("tanh")))
    other = "0" * len(digest)
    entry.rename(entry.with_name(f"{label}-{other}.safetensors"))
    assert disk_cache.read("tables", label, other, ["s1"]) is None   # its metadata names the old digest


def test_a_custom_phi_with_a_registry_name_is_never_stored(cache):
    tanh = activations.get("tanh")
    fake = dataclasses.replace(tanh, phi=lambda x: np.tanh(2 * x), dphi=lambda x: 2 / np.cosh(2 * x) ** 2)
    assert not tabulation._registered(fake)
    assert tabulation._registered(activations.get("tanh"))
    assert tabulation._registered(activations.get("shifted_relu", alpha=0.25))
    tabulation._ctable(tabulation._Key(fake), 1.0)
    assert not cache.exists()


def test_switched_off_or_unwritable_the_cache_costs_only_time(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_OF_CHAOS_CACHE", "off")
    assert disk_cache.directory() is None
    assert not disk_cache.write("tables", "x", "d", {"a": np.zeros(3)}, {})
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("EDGE_OF_CHAOS_CACHE", str(blocker / "below"))     # a folder under a file
    assert not disk_cache.write("tables", "x", "d", {"a": np.zeros(3)}, {})
    assert disk_cache.read("tables", "x", "d", ["a"]) is None


def test_the_default_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGE_OF_CHAOS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert disk_cache.directory() == tmp_path / "edge-of-chaos"


def test_the_fingerprint_follows_sources_and_parameters(tmp_path, monkeypatch):
    import sys
    import types

    module = types.ModuleType("eoc_fingerprint_probe")
    module.__file__ = str(tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text("A = 1\n")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    first = disk_cache.fingerprint([module.__name__], 32)
    assert disk_cache.fingerprint([module.__name__], 33) != first
    (tmp_path / "probe.py").write_text("A = 2\n")
    assert disk_cache.fingerprint([module.__name__], 32) != first
    assert disk_cache.fingerprint(["no.such.module"], 32) is None
