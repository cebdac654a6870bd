"""File ▸ Open dataset…, Save model…, Open model… and the session's dataset paths, through the real window."""

from __future__ import annotations

import json

import pytest
import torch
from PySide6.QtWidgets import QMenu

from app.panels.base import Panel
from app.paramsets import Session, read_session, session_from_document
from core import data, models, nets
from tests.core.test_data import mnist_like, write_idx

SPEC = nets.NetSpec(64, (12,), 10)
QUICK = models.Recipe(optimizer="adam", lr=1e-2, epochs=1, batch_size=128)


class ModelPanel(Panel):
    """A panel holding one trained network, as a training panel does."""

    name = "modeltest"
    title = "Model test"

    def build(self) -> None:
        self.trained = None

    def schedule(self, changed) -> None:
        self.mark_rendered()

    def trained_model(self):
        return self.trained

    def use_model(self, trained) -> None:
        if trained.spec.inputs != 64:
            raise models.ModelFileError(f"{self.title} needs a 64-input network")
        self.trained = trained


@pytest.fixture(scope="module")
def trained():
    return list(models.train_cached(data.load("digits"), SPEC, QUICK, seed=0))[-1]


@pytest.fixture
def panel(window, qtbot, monkeypatch, trained):
    p = ModelPanel(window.runner)
    qtbot.addWidget(p)
    p.trained = trained
    monkeypatch.setattr(window, "current_panel", lambda: p)
    return p


def idx_pair(folder, n=40, **labels_kw):
    images, labels = mnist_like(n)
    folder.mkdir(exist_ok=True)
    return (write_idx(folder / "images-idx3-ubyte", images),
            write_idx(folder / "labels-idx1-ubyte", labels, **labels_kw))


def test_the_file_menu_has_the_dataset_and_model_actions(window):
    file_menu = next(m for m in window.menuBar().findChildren(QMenu) if m.title() == "&File")
    texts = [a.text().replace("&", "") for a in file_menu.actions()]
    for name in ("Open dataset…", "Save model…", "Open model…"):
        assert name in texts


def test_open_dataset_and_a_bad_one_keeps_the_previous(window, qtbot, tmp_path):
    good = idx_pair(tmp_path / "good")
    assert window.open_dataset(*good)
    qtbot.waitUntil(lambda: window.dataset_paths == good, timeout=10_000)
    assert window.dataset is data.load("idx") and window.dataset.image_shape == (6, 5)
    images, labels = mnist_like(40)
    bad = (good[0], write_idx(tmp_path / "short-idx1-ubyte", labels[:-1]))
    window.last_error = ""
    assert window.open_dataset(*bad)
    qtbot.waitUntil(lambda: "Dataset refused" in window.last_error, timeout=10_000)
    assert "holds 40 images but short-idx1-ubyte holds 39 labels" in window.last_error
    assert "Kept images-idx3-ubyte" in window.last_error
    assert window.dataset_paths == good and data.load("idx") is window.dataset


def test_save_and_open_model_round_trip(window, panel, tmp_path, trained):
    path = window.save_model(str(tmp_path / "net.safetensors"))
    assert path is not None and path.is_file()
    panel.trained = models.Trained(nets.build(SPEC, seed=9), SPEC, QUICK, trained.data_key, 9)
    assert window.open_model(str(path))
    assert panel.trained.seed == 0
    for p, q in zip(panel.trained.model.parameters(), trained.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_bad_model_files_are_refused_and_nothing_changes(window, panel, tmp_path, trained):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    assert not window.open_model(str(junk))
    assert "Model refused" in window.last_error and "not a safetensors" in window.last_error
    assert panel.trained is trained
    moons = models.Trained(nets.build(nets.NetSpec(2, (4,), 2)), nets.NetSpec(2, (4,), 2), QUICK,
                           data.load("moons").key, 0)
    other = models.save(tmp_path / "moons.safetensors", moons)
    assert not window.open_model(str(other))
    assert "not on this panel's data" in window.last_error
    assert panel.trained is trained


def test_a_panel_without_a_model_refuses_both(window, qtbot, monkeypatch, tmp_path, trained):
    plain = Panel(window.runner)
    qtbot.addWidget(plain)
    monkeypatch.setattr(window, "current_panel", lambda: plain)
    assert window.save_model(str(tmp_path / "x.safetensors")) is None
    assert "has no trained model to save" in window.last_error
    path = models.save(tmp_path / "net.safetensors", trained)
    assert not window.open_model(str(path))
    assert "Panel has no model to replace" in window.last_error


def test_sessions_keep_the_dataset_paths(window, qtbot, tmp_path):
    good = idx_pair(tmp_path / "good")
    window.open_dataset(*good)
    qtbot.waitUntil(lambda: window.dataset_paths == good, timeout=10_000)
    path = window.save_session(str(tmp_path / "session.json"))
    assert read_session(path).dataset == good
    window.dataset_paths = None
    assert window.open_session(str(path))
    qtbot.waitUntil(lambda: window.dataset_paths == good, timeout=10_000)


def test_an_old_session_without_a_dataset_still_loads(window):
    tab = window.current_name()
    doc = {"format": "edge-of-chaos/session", "version": 1, "tab": tab, "panels": {}}
    session = session_from_document(doc)
    assert session.dataset is None
    window.apply_session(session)
    assert window.current_name() == tab and window.dataset_paths is None


def test_a_session_whose_dataset_is_gone_loads_with_a_message(window, tmp_path):
    gone = (str(tmp_path / "gone-idx3-ubyte"), str(tmp_path / "gone-idx1-ubyte"))
    tab = window.current_name()
    window.apply_session(Session(tab, {}, gone))
    assert window.current_name() == tab
    assert "dataset is gone" in window.statusBar().currentMessage()
    assert window.dataset_paths is None


def test_a_session_with_a_malformed_dataset_entry_is_refused():
    from app.paramsets import ParamFileError

    doc = {"format": "edge-of-chaos/session", "version": 1, "tab": "propagation", "panels": {},
           "dataset": {"images": 3}}
    with pytest.raises(ParamFileError, match="dataset"):
        session_from_document(json.loads(json.dumps(doc)))
