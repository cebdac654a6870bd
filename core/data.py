"""Datasets for the training panels: scikit-learn's 8×8 digits, MNIST-format IDX files, 2-D toy sets and a
teacher network for regression.

Every dataset is a frozen :class:`Dataset` of float32 inputs scaled to [0, 1] (images flattened, their
shape kept in ``image_shape`` for drawing) and int64 labels (float32 ``(n, 1)`` targets for regression),
split into train and test parts by a seeded, stratified split. :func:`load` caches what it builds: the
same arguments give the same object, so every panel that trains on "digits" sees one tensor in memory.

A bad IDX file raises :class:`DataError` naming the file and the problem (wrong magic number, truncated,
a header that claims more data than the file holds, image and label counts that differ, labels outside
the classes); nothing is half-loaded.

References
----------
- Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits" (the IDX format).
- E. Alpaydin, C. Kaynak, "Optical recognition of handwritten digits", UCI ML repository (1998): the
  8×8 digits bundled with scikit-learn.
- H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST", arXiv:1708.07747 (2017).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

NAMES = ("digits", "moons", "circles", "xor", "spiral", "teacher", "idx")
TOYS = ("moons", "circles", "xor", "spiral")

IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
"""The IDX element types (third byte of the magic number) and their big-endian numpy dtypes."""

MAX_TOY_POINTS = 1_000_000


class DataError(ValueError):
    """A dataset could not be loaded; the message names the file (or the option) and the problem."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of one dataset, as torch tensors.

    Attributes
    ----------
    x_train, x_test : torch.Tensor
        float32 ``(n, inputs)``, every value in [0, 1].
    y_train, y_test : torch.Tensor
        int64 ``(n,)`` class labels in ``[0, classes)``, or float32 ``(n, 1)`` targets for regression.
    classes : int
        Number of classes; 0 for regression.
    image_shape : tuple or None
        ``(rows, cols)`` of an image input (e.g. (8, 8)); None for the 2-D toys and the teacher.
    key : str
        Names the data and every option that changes it (and, for IDX files, their content): the
        key of the trained-model cache and of saved model files.
    """

    name: str
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    classes: int
    image_shape: tuple[int, ...] | None
    key: str
    _moved: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def inputs(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def task(self) -> str:
        return "classification" if self.classes > 0 else "regression"

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def to(self, device) -> Dataset:
        """This dataset with its tensors on ``device`` (the copy is made once and remembered)."""
        from core.device import resolve

        dev = resolve(device)
        if self.x_train.device == dev:
            return self
        with _lock:
            moved = self._moved.get(str(dev))
            if moved is None:
                moved = Dataset(self.name, self.x_train.to(dev), self.y_train.to(dev), self.x_test.to(dev),
                                self.y_test.to(dev), self.classes, self.image_shape, self.key)
                self._moved[str(dev)] = moved
        return moved


_lock = threading.Lock()
_cache: dict[tuple, Dataset] = {}
_opened: dict[str, Dataset] = {}


def load(name: str, *, seed: int = 0, test_fraction: float = 0.25, **kw) -> Dataset:
    """The dataset called ``name``, split by a seeded stratified split; cached (same args → same object).

    Parameters
    ----------
    name : str
        ``"digits"`` (scikit-learn's bundled 8×8 digits: 1797 images, 64 inputs, 10 classes),
        ``"moons"``, ``"circles"``, ``"xor"``, ``"spiral"`` (2-D, options ``n`` points and ``noise``; spiral
        also ``classes`` arms), ``"teacher"`` (regression: ``n``, ``inputs``, ``hidden``, ``noise``) or
        ``"idx"`` (options ``images``, ``labels`` paths, see :func:`load_idx`; without them the pair
        last opened with :func:`open_idx`).
    seed : int
        Seeds the split and, for the generated sets, the points.
    test_fraction : float
        Share of the points held out for testing, in (0, 1).

    Raises
    ------
    DataError
        Unknown name or option, an option out of range, or a bad IDX file.
    """
    if name not in NAMES:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if name == "idx":
        if not kw:
            with _lock:
                if "idx" not in _opened:
                    raise DataError("no IDX dataset is open: use File ▸ Open dataset… to pick an MNIST-format "
                                    "image file and its label file")
                return _opened["idx"]
        return load_idx(seed=seed, test_fraction=test_fraction, **kw)
    key = (name, int(seed), float(test_fraction), tuple(sorted(kw.items())))
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    # torch before scikit-learn: sklearn's first import runs scipy.stats, which asks the torch module for
    # Tensor, and fails while another thread is still importing torch; `import torch` waits for it.
    import torch  # noqa: F401
    if name == "digits":
        if kw:
            raise DataError(f"digits takes no options, got {', '.join(kw)}")
        x, y, classes, shape = _digits()
    elif name == "teacher":
        x, y, classes, shape = _teacher(seed, **kw)
    else:
        x, y, classes, shape = _toy(name, seed, **kw)
    data = _split(name, x, y, classes, shape, seed, test_fraction, _key(name, seed, test_fraction, kw))
    with _lock:
        return _cache.setdefault(key, data)


def _key(name: str, seed: int, test_fraction: float, kw: dict) -> str:
    options = ",".join(f"{k}={v}" for k, v in sorted(kw.items()))
    return f"{name}({options + ',' if options else ''}seed={int(seed)},test_fraction={float(test_fraction):g})"


def _split(name, x: np.ndarray, y: np.ndarray, classes: int, shape, seed: int, test_fraction: float,
           key: str) -> Dataset:
    """A seeded split, stratified by class for classification (scikit-learn's train_test_split)."""
    import torch
    from sklearn.model_selection import train_test_split

    stratify = y if classes > 0 and np.bincount(y, minlength=classes).min() >= 2 else None
    index = np.arange(len(x))
    try:
        train, test = train_test_split(index, test_size=float(test_fraction), random_state=int(seed),
                                       stratify=stratify, shuffle=True)
    except ValueError as err:
        raise DataError(f"{name}: cannot split {len(x)} points into train and test: {err}") from err
    train.sort()
    test.sort()
    y_dtype = np.int64 if classes > 0 else np.float32

    def tensor(a: np.ndarray, dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))

    return Dataset(name, tensor(x[train], np.float32), tensor(y[train], y_dtype), tensor(x[test], np.float32),
                   tensor(y[test], y_dtype), int(classes), shape, key)


def _digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # pixel values are counts 0..16 of an 8×8 block of the original 32×32 bitmaps
    return bunch.data / 16.0, bunch.target.astype(np.int64), 10, (8, 8)


def _int_option(name: str, option: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
        raise DataError(f"{name}: {option} must be a whole number, got {value!r}")
    if not lo <= int(value) <= hi:
        raise DataError(f"{name}: {option} = {value} is out of range [{lo}, {hi}]")
    return int(value)


def _noise_option(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise DataError(f"{name}: noise must be a finite number ≥ 0, got {value!r}")
    return float(value)


def _toy(name: str, seed: int, n: int = 400, noise: float = 0.1, classes: int = 2, **extra):
    """2-D points and labels, mapped affinely into [0, 1]² (the same map on both axes keeps shapes round)."""
    if extra:
        raise DataError(f"{name}: unknown options {', '.join(extra)}")
    n = _int_option(name, "n", n, 8, MAX_TOY_POINTS)
    noise = _noise_option(name, noise)
    rng = np.random.default_rng(seed)
    if name == "moons":
        from sklearn.datasets import make_moons

        x, y = make_moons(n, noise=noise, random_state=int(seed))
    elif name == "circles":
        from sklearn.datasets import make_circles

        x, y = make_circles(n, noise=noise, factor=0.5, random_state=int(seed))
    elif name == "xor":
        x = rng.uniform(-1.0, 1.0, size=(n, 2))
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
        x = x + noise * rng.standard_normal(x.shape)
    else:
        classes = _int_option(name, "classes", classes, 2, 10)
        y = np.arange(n) % classes
        t = rng.uniform(0.0, 1.0, n)
        # arm k: radius t, turning 1.5 times (angle 3πt), rotated by 2πk/classes
        angle = 3.0 * math.pi * t + 2.0 * math.pi * y / classes
        x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) + noise * rng.standard_normal((n, 2))
    if name != "spiral" and classes != 2:
        raise DataError(f"{name} has 2 classes, got classes = {classes}")
    lo, hi = x.min(axis=0), x.max(axis=0)
    centre, half = (lo + hi) / 2.0, max(float((hi - lo).max()) / 2.0, 1e-12)
    x = 0.5 + 0.45 * (x - centre) / half
    return x, np.asarray(y, np.int64), int(classes), None


def _teacher(seed: int, n: int = 512, inputs: int = 4, hidden: int = 16, noise: float = 0.0, **extra):
    """Targets y = v·tanh(W x' + b) / √hidden + noise with x' = 2x − 1, x uniform in [0, 1]^inputs and a
    random teacher (W ~ N(0, 1/inputs), b ~ N(0, 0.1²), v ~ N(0, 1)): a smooth regression target whose
    Hessian work needs no labels."""
    if extra:
        raise DataError(f"teacher: unknown options {', '.join(extra)}")
    n = _int_option("teacher", "n", n, 8, MAX_TOY_POINTS)
    inputs = _int_option("teacher", "inputs", inputs, 1, 4096)
    hidden = _int_option("teacher", "hidden", hidden, 1, 4096)
    noise = _noise_option("teacher", noise)
    rng = np.random.default_rng([int(seed), 7])
    w = rng.standard_normal((hidden, inputs)) / math.sqrt(inputs)
    b = 0.1 * rng.standard_normal(hidden)
    v = rng.standard_normal(hidden)
    x = rng.uniform(0.0, 1.0, size=(n, inputs))
    y = np.tanh((2.0 * x - 1.0) @ w.T + b) @ v / math.sqrt(hidden) + noise * rng.standard_normal(n)
    return x, y[:, None], 0, None


# ---------------------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)


def read_idx(path) -> np.ndarray:
    """The array stored in one IDX file, ``.gz`` or raw.

    The format: two zero bytes, a type byte (0x08 unsigned byte … 0x0E double), a byte giving the number
    of dimensions, one big-endian int32 per dimension, then the data in C order.

    Raises
    ------
    DataError
        Naming the file: missing, not gzip though it says so, wrong magic number, truncated header, fewer
        (or more) bytes than the header claims.
    """
    path = Path(path)
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{name}: cannot read the file ({err.strerror or err})") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{name}: the gzip data is damaged or truncated ({err})") from err
    if len(raw) < 4:
        raise DataError(f"{name}: truncated: {len(raw)} bytes, not even the 4-byte magic number of an IDX file")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise DataError(f"{name}: not an IDX file: wrong magic number 0x{raw[:4].hex()} (expected 0x0000TTDD with "
                        "type TT in 08, 09, 0B, 0C, 0D, 0E and DD ≥ 1 dimensions, e.g. 0x00000803 for images)")
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated header: {ndim} dimensions need {header} bytes, the file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    held = len(raw) - header
    if held < expected:
        raise DataError(f"{name}: the header claims {' × '.join(map(str, shape))} values ({expected:,} bytes) but "
                        f"the file holds only {held:,} bytes after the header (truncated?)")
    if held > expected:
        raise DataError(f"{name}: {held - expected:,} bytes follow the {' × '.join(map(str, shape))} values the "
                        "header describes: not a well-formed IDX file")
    return np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header).reshape(shape)


def load_idx(images, labels, *, seed: int = 0, test_fraction: float = 0.25, classes: int = 10,
             limit: int | None = None) -> Dataset:
    """An MNIST-format image file and its label file as a Dataset (cached by path and content).

    Parameters
    ----------
    images, labels : path
        IDX files, ``.gz`` or raw: images ``(n, rows, cols)`` of unsigned bytes (scaled by 1/255 into
        [0, 1]), labels ``(n,)`` in ``[0, classes)``.
    limit : int, optional
        Keep only the first ``limit`` images (a quick look at a big file).

    Raises
    ------
    DataError
        Naming the file and the problem (see :func:`read_idx`), or image and label counts that differ,
        or labels outside the classes.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = Path(images), Path(labels)
    x = read_idx(images)
    y = read_idx(labels)
    if x.ndim not in (2, 3):
        raise DataError(f"{images.name}: an image file holds (n, rows, cols) values, this one "
                        f"{' × '.join(map(str, x.shape))} (is it the label file?)")
    if x.dtype != np.uint8:
        raise DataError(f"{images.name}: images must be unsigned bytes (type 0x08), this file holds {x.dtype.name}")
    if y.ndim != 1:
        raise DataError(f"{labels.name}: a label file holds one value per image, this one "
                        f"{' × '.join(map(str, y.shape))} (is it the image file?)")
    if y.dtype.kind not in "iu":
        raise DataError(f"{labels.name}: labels must be integers, this file holds {y.dtype.name}")
    if len(x) != len(y):
        raise DataError(f"{images.name} holds {len(x):,} images but {labels.name} holds {len(y):,} labels: "
                        "the counts differ")
    if len(y) < 8:
        raise DataError(f"{labels.name}: only {len(y)} labelled images; at least 8 are needed to train and test")
    bad = (y < 0) | (y >= classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{labels.name}: label {int(y[first])} of image {first} is outside the classes "
                        f"0…{classes - 1}")
    if limit is not None:
        x, y = x[: int(limit)], y[: int(limit)]
    digest = hashlib.blake2b(x.tobytes(), digest_size=8)
    digest.update(y.astype(np.int64).tobytes())
    key = (f"idx({images.name},{labels.name},{digest.hexdigest()},n={len(y)},classes={classes},"
           f"seed={int(seed)},test_fraction={float(test_fraction):g})")
    cache_key = ("idx", str(images.resolve()), str(labels.resolve()), key)
    with _lock:
        hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    shape = tuple(int(s) for s in x.shape[1:]) if x.ndim == 3 else None
    flat = x.reshape(len(x), -1).astype(np.float32) / 255.0
    data = _split("idx", flat, y.astype(np.int64), int(classes), shape, seed, test_fraction, key)
    with _lock:
        return _cache.setdefault(cache_key, data)


def open_idx(images, labels, **kw) -> Dataset:
    """:func:`load_idx`, and make this the pair that ``load("idx")`` returns. A bad file raises DataError and
    leaves the previously opened pair in place."""
    data = load_idx(images, labels, **kw)
    with _lock:
        _opened["idx"] = data
    return data


def opened_idx() -> Dataset | None:
    """The IDX dataset last opened with :func:`open_idx`, or None."""
    with _lock:
        return _opened.get("idx")
