"""core.models: the shared cache, and safetensors model files good and bad."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from core import data, models, nets
from core.models import ModelFileError, Recipe

SPEC = nets.NetSpec(64, (16,), 10)
QUICK = Recipe(optimizer="adam", lr=1e-2, epochs=2, batch_size=128)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture(scope="module")
def trained(digits):
    models.clear()
    items = list(models.train_cached(digits, SPEC, QUICK, seed=1))
    return items[-1]


def test_train_cached_trains_once_and_shares_the_model(digits, trained):
    assert isinstance(trained, models.Trained)
    assert trained.data_key == digits.key and trained.seed == 1 and trained.recipe == QUICK
    assert [r.step for r in trained.history][0] == 0 and trained.history[-1].epoch == 2.0
    again = list(models.train_cached(digits, SPEC, QUICK, seed=1))
    assert again == [trained]                                   # no records: it was cached
    assert models.cached(digits, SPEC, QUICK, 1) is trained
    assert models.cached(digits, SPEC, QUICK, 2) is None
    assert models.cached(digits, SPEC, Recipe(optimizer="sgd", lr=0.1, epochs=2, batch_size=128), 1) is None


def test_the_cached_model_is_what_train_gives(digits, trained):
    from core import training

    model = nets.build(SPEC, seed=1)
    list(training.train(model, digits, seed=1, **QUICK.train_kwargs()))
    for p, q in zip(model.parameters(), trained.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_save_and_open_round_trip(tmp_path, digits, trained):
    path = models.save(tmp_path / "net.safetensors", trained)
    back = models.open(path, data_key=digits.key)
    assert back.spec == trained.spec and back.recipe == trained.recipe and back.seed == 1
    assert back.data_key == digits.key
    assert [r.test_loss for r in back.history] == [r.test_loss for r in trained.history]
    for (k, p), q in zip(trained.model.state_dict().items(), back.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    x = digits.x_test[:20]
    torch.testing.assert_close(back.model(x), trained.model(x), rtol=0, atol=0)
    # the file is plain safetensors with the JSON spec in its metadata: no pickle
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8:8 + header_len])
    assert header["__metadata__"]["format"] == "edge-of-chaos/model"
    assert json.loads(header["__metadata__"]["spec"])["widths"] == [16]


def test_batch_norm_and_residual_models_round_trip(tmp_path):
    spec = nets.NetSpec(4, (6, 6), 3, batch_norm=True, residual=True, phi="tanh")
    model = nets.build(spec, seed=3)
    model.train()
    model(torch.rand(32, 4))          # move the running statistics off their defaults
    trained = models.Trained(model.eval(), spec, Recipe(), "moons(test)", 3)
    back = models.open(models.save(tmp_path / "bn.safetensors", trained))
    x = torch.rand(9, 4)
    torch.testing.assert_close(back.model(x), model(x), rtol=0, atol=0)


def _write(path, tensors, metadata):
    save_file(tensors, str(path), metadata=metadata)
    return path


def _good_metadata(trained):
    return {"format": "edge-of-chaos/model", "version": "1", "spec": json.dumps(trained.spec.to_dict()),
            "recipe": json.dumps(trained.recipe.to_dict()), "data_key": trained.data_key, "seed": "1"}


def test_a_file_that_is_not_safetensors_is_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04\x95 this is a pickle, not safetensors")
    with pytest.raises(ModelFileError, match="junk.safetensors: not a safetensors model file"):
        models.open(junk)
    with pytest.raises(ModelFileError, match="nothing.safetensors: no such file"):
        models.open(tmp_path / "nothing.safetensors")


def test_safetensors_without_our_metadata_is_refused(tmp_path):
    path = _write(tmp_path / "other.safetensors", {"w": torch.zeros(2)}, {"format": "pt"})
    with pytest.raises(ModelFileError, match="not an Edge of Chaos model"):
        models.open(path)


def test_tensors_that_do_not_match_the_spec_are_refused(tmp_path, trained):
    state = {k: v.contiguous() for k, v in trained.model.state_dict().items()}
    meta = _good_metadata(trained)
    missing = dict(state)
    del missing["linears.1.bias"]
    with pytest.raises(ModelFileError, match="tensors missing for its spec: linears.1.bias"):
        models.open(_write(tmp_path / "a.safetensors", missing, meta))
    extra = {**state, "linears.2.weight": torch.zeros(3, 3)}
    with pytest.raises(ModelFileError, match="its spec has no place for: linears.2.weight"):
        models.open(_write(tmp_path / "b.safetensors", extra, meta))
    wrong = {**state, "linears.0.weight": torch.zeros(16, 63)}
    with pytest.raises(ModelFileError, match=r"linears.0.weight has shape \(16, 63\), its spec needs \(16, 64\)"):
        models.open(_write(tmp_path / "c.safetensors", wrong, meta))
    nan = {**state, "linears.0.bias": torch.full((16,), float("nan"))}
    with pytest.raises(ModelFileError, match="linears.0.bias holds NaN"):
        models.open(_write(tmp_path / "d.safetensors", nan, meta))
    bad_spec = {**meta, "spec": json.dumps({**trained.spec.to_dict(), "phi": "rectifier"})}
    with pytest.raises(ModelFileError, match="its spec is unreadable.*rectifier"):
        models.open(_write(tmp_path / "e.safetensors", state, bad_spec))


def test_a_model_for_other_data_is_refused(tmp_path, trained):
    path = models.save(tmp_path / "digits.safetensors", trained)
    moons = data.load("moons")
    with pytest.raises(ModelFileError, match=r"trained on digits\(.*\), not on this panel's data \(moons"):
        models.open(path, data_key=moons.key)
