"""core.data: digits against scikit-learn's own copy, the toy sets, the teacher, and IDX files good and bad."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import data
from core.data import DataError


def write_idx(path, array: np.ndarray, type_code: int = 0x08, shape=None, extra: bytes = b"", magic=None,
              compress: bool = False) -> str:
    """A tiny IDX writer: magic 0x0000TTDD, big-endian int32 dimensions, the values in C order."""
    shape = array.shape if shape is None else shape
    head = magic if magic is not None else bytes([0, 0, type_code, len(shape)])
    body = head + b"".join(struct.pack(">i", d) for d in shape) + array.astype(array.dtype.newbyteorder(">")).tobytes()
    body += extra
    path = str(path)
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(body)
    return path


def mnist_like(n=40, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 6, 5), dtype=np.uint8)
    labels = (np.arange(n) % classes).astype(np.uint8)
    return images, labels


# -- digits ----------------------------------------------------------------------------------------------

def test_digits_are_sklearns_digits_scaled_and_split_stratified():
    from sklearn.datasets import load_digits

    d = data.load("digits")
    assert (d.n_train, d.n_test, d.inputs, d.classes, d.image_shape) == (1347, 450, 64, 10, (8, 8))
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0
    # the two parts together are exactly scikit-learn's 1797 images / 16, each image once
    ref = load_digits()
    ours = np.concatenate([d.x_train.numpy(), d.x_test.numpy()]).astype(np.float64) * 16
    labels = np.concatenate([d.y_train.numpy(), d.y_test.numpy()])
    order = np.lexsort(np.column_stack([ours, labels]).T)
    ref_order = np.lexsort(np.column_stack([ref.data, ref.target]).T)
    np.testing.assert_array_equal(ours[order], ref.data[ref_order])
    np.testing.assert_array_equal(labels[order], ref.target[ref_order])
    # stratified: each class's test share is within one image of 25 %
    counts = np.bincount(ref.target, minlength=10)
    test_counts = np.bincount(d.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.25 * counts) <= 1.0)
    assert d.task == "classification"


def test_load_is_cached_and_seeded():
    assert data.load("digits") is data.load("digits", seed=0)
    a, b = data.load("digits", seed=0), data.load("digits", seed=1)
    assert a.key != b.key
    assert not torch.equal(a.y_test, b.y_test)
    c = data.load("digits", seed=0, test_fraction=0.5)
    assert c.n_test == 899 and c.key != a.key
    assert a.to("cpu") is a


def test_unknown_dataset_and_options_are_refused_by_name():
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        data.load("cifar")
    with pytest.raises(DataError, match="digits takes no options"):
        data.load("digits", n=10)
    with pytest.raises(DataError, match="test_fraction"):
        data.load("digits", test_fraction=1.0)
    with pytest.raises(DataError, match="noise"):
        data.load("moons", noise=-1)
    with pytest.raises(DataError, match="n = 3 is out of range"):
        data.load("xor", n=3)


# -- toys and teacher --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", data.TOYS)
def test_toy_sets_are_2d_in_the_unit_square_and_balanced(name):
    d = data.load(name, n=200, noise=0.05, seed=3)
    assert d.inputs == 2 and d.classes == 2 and d.image_shape is None
    x = torch.cat([d.x_train, d.x_test])
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert d.n_train + d.n_test == 200
    counts = torch.bincount(torch.cat([d.y_train, d.y_test]))
    assert abs(int(counts[0]) - int(counts[1])) <= 200 * 0.2
    again = data.load(name, n=200, noise=0.05, seed=3)
    assert again is d
    other = data.load(name, n=200, noise=0.05, seed=4)
    assert not torch.equal(other.x_train, d.x_train)


def test_xor_labels_are_the_xor_of_the_quadrants_without_noise():
    d = data.load("xor", n=400, noise=0.0)
    # the map into [0, 1]² centres the points' bounding box at ½, so the origin lands within ~1 % of it:
    # away from those lines every label is the xor of the quadrant signs
    x = d.x_train - 0.5
    clear = (x.abs() > 0.01).all(dim=1)
    truth = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    assert int(clear.sum()) > 270  # of 300
    assert torch.equal(truth[clear], d.y_train[clear])


def test_circles_separate_by_radius_without_noise():
    d = data.load("circles", n=300, noise=0.0)
    r = (d.x_train - 0.5).norm(dim=1)
    inner, outer = r[d.y_train == 1], r[d.y_train == 0]
    assert float(inner.max()) < float(outer.min())
    assert float(outer.max()) / float(inner.max()) == pytest.approx(2.0, rel=1e-5)  # sklearn's factor 0.5


def test_spiral_takes_a_number_of_arms():
    d = data.load("spiral", n=300, classes=3, noise=0.0)
    assert d.classes == 3
    assert torch.bincount(torch.cat([d.y_train, d.y_test])).tolist() == [100, 100, 100]


def test_teacher_is_a_seeded_regression_of_a_random_tanh_net():
    d = data.load("teacher", n=100, inputs=3, hidden=5, seed=2)
    assert d.task == "regression" and d.classes == 0
    assert d.y_train.shape == (75, 1) and d.y_train.dtype == torch.float32
    assert d.x_train.shape == (75, 3)
    assert float(d.y_train.std()) > 0.05
    # noise adds variance on top of the same teacher
    noisy = data.load("teacher", n=100, inputs=3, hidden=5, seed=2, noise=1.0)
    assert float((noisy.y_train - d.y_train).std()) == pytest.approx(1.0, rel=0.3)
    assert torch.equal(noisy.x_train, d.x_train)


# -- IDX files ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_idx_pair_loads_scaled_and_split(tmp_path, compress):
    images, labels = mnist_like()
    suffix = ".gz" if compress else ""
    ip = write_idx(tmp_path / f"imgs-idx3-ubyte{suffix}", images, compress=compress)
    lp = write_idx(tmp_path / f"labs-idx1-ubyte{suffix}", labels, compress=compress)
    d = data.load_idx(ip, lp, test_fraction=0.25)
    assert d.image_shape == (6, 5) and d.inputs == 30 and d.classes == 10
    assert d.n_train == 30 and d.n_test == 10
    # every image comes back as its bytes / 255, with its own label
    flat = images.reshape(40, -1).astype(np.float32) / 255
    for x, y in zip(d.x_test.numpy(), d.y_test.numpy(), strict=True):
        row = np.flatnonzero((flat == x).all(axis=1))
        assert len(row) == 1 and labels[row[0]] == y
    assert data.load("idx", images=ip, labels=lp) is d


def test_open_idx_keeps_the_old_dataset_when_the_new_one_is_bad(tmp_path):
    images, labels = mnist_like()
    good = data.open_idx(write_idx(tmp_path / "i", images), write_idx(tmp_path / "l", labels))
    assert data.load("idx") is good
    bad_labels = write_idx(tmp_path / "l2", labels[:-1])
    with pytest.raises(DataError):
        data.open_idx(tmp_path / "i", bad_labels)
    assert data.load("idx") is good and data.opened_idx() is good


BAD = {
    "wrong magic": (lambda p, im, lb: (write_idx(p / "i", im, magic=b"\x12\x34\x08\x03"), write_idx(p / "l", lb)),
                    "i: not an IDX file: wrong magic number 0x12340803"),
    "truncated header": (lambda p, im, lb: (_raw(p / "i", b"\x00\x00\x08\x03\x00\x00"), write_idx(p / "l", lb)),
                         "i: truncated header"),
    "claims more": (lambda p, im, lb: (write_idx(p / "i", im, shape=(41, 6, 5)), write_idx(p / "l", lb)),
                    "i: the header claims 41 × 6 × 5 values"),
    "trailing bytes": (lambda p, im, lb: (write_idx(p / "i", im), write_idx(p / "l", lb, extra=b"\x01\x02")),
                       "l: 2 bytes follow"),
    "counts differ": (lambda p, im, lb: (write_idx(p / "i", im), write_idx(p / "l", lb[:-3])),
                      "i holds 40 images but l holds 37 labels"),
    "label outside": (lambda p, im, lb: (write_idx(p / "i", im), write_idx(p / "l", np.where(lb == 3, 12, lb))),
                      "l: label 12 of image 3 is outside the classes 0…9"),
    "swapped": (lambda p, im, lb: (write_idx(p / "l", lb), write_idx(p / "i", im)),
                "l: an image file holds"),
    "not bytes": (lambda p, im, lb: (write_idx(p / "i", im.astype(">i4"), type_code=0x0C), write_idx(p / "l", lb)),
                  "i: images must be unsigned bytes"),
    "damaged gzip": (lambda p, im, lb: (_raw(p / "i.gz", gzip.compress(bytes(range(256)) * 4)[:40]),
                                        write_idx(p / "l", lb)),
                     "i.gz: the gzip data is damaged"),
    "missing": (lambda p, im, lb: (str(p / "nope"), write_idx(p / "l", lb)), "nope: cannot read the file"),
}


def _raw(path, blob: bytes) -> str:
    path.write_bytes(blob)
    return str(path)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_idx_files_are_refused_naming_file_and_problem(tmp_path, case):
    make, message = BAD[case]
    images, labels = mnist_like()
    ip, lp = make(tmp_path, images, labels)
    with pytest.raises(DataError) as err:
        data.load_idx(ip, lp)
    assert message in str(err.value)


# Another thread is importing torch and has not yet reached ``torch.Tensor`` (a loader holds it at torch._C
# until this thread's load is over, or 3 s) while this thread loads the digits. scikit-learn's import runs
# scipy.stats, whose array-API helpers ask the half-made torch module for ``Tensor``: the CI failure of
# 2026-12-01 ("partially initialized module 'torch' has no attribute 'Tensor'", from the Signal
# Propagation panel's trainability job). load() must wait for torch's import instead.
_RACE = r"""
import sys, threading
from importlib.machinery import PathFinder

from core import data

loaded = threading.Event()

class Held:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        loaded.wait(3.0)
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)

class HoldTorch:
    def find_spec(self, name, path=None, target=None):
        if name != "torch._C":
            return None
        spec = PathFinder.find_spec(name, path, target)
        spec.loader = Held(spec.loader)
        return spec

sys.meta_path.insert(0, HoldTorch())
importer = threading.Thread(target=lambda: __import__("torch"))
importer.start()
while "torch" not in sys.modules:
    pass
try:
    digits = data.load("digits")
finally:
    loaded.set()
importer.join()
print(len(digits.x_train) + len(digits.x_test))
"""


def test_digits_load_while_another_thread_imports_torch():
    out = subprocess.run([sys.executable, "-c", _RACE], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "1797"
