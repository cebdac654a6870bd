"""core.optimizers.stacked: the rows of one (K, P) tensor stepped together equal one torch.optim optimiser per
row (our AdaGradNorm for adagrad_norm), in float64, for every rule and its hyper-parameters."""

from __future__ import annotations

import pytest
import torch

from core.optimizers import make, resolve_hyper
from core.optimizers.stacked import StackedOptimizers, rule

RUNS = [  # adjacent rows of one rule form a block; the rmsprop and adam rows in the middle go on their own
    ("gd", dict(lr=0.3)),
    ("sgd", dict(lr=0.1, weight_decay=0.01)),
    ("heavy_ball", dict(lr=0.05, beta=0.8)),
    ("nesterov", dict(lr=0.04, beta=0.95, weight_decay=1e-3)),
    ("heavy_ball", dict(lr=0.02)),
    ("adagrad", dict(lr=0.2, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("adagrad", dict(lr=0.05, eps=1e-6)),
    ("adagrad_norm", dict(lr=1.0, b0=1e-3)),
    ("adagrad_norm", dict(lr=0.5, b0=3.0, weight_decay=0.1)),
    ("rmsprop", dict(lr=1e-2, alpha=0.9, centered=True)),      # torch.optim's own
    ("adam", dict(lr=1e-2, amsgrad=True)),                      # torch.optim's own
    ("rmsprop", dict(lr=1e-2, alpha=0.9)),
    ("rmsprop", dict(lr=3e-3, eps=1e-4, weight_decay=0.02)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.99))),
    ("adam", dict(lr=3e-3, eps=1e-6, weight_decay=0.05)),
]
SHARED = [(name, kw) for name, kw in (("nesterov", dict(lr=0.05)), ("adagrad", {}), ("adagrad_norm", {}),
                                      ("rmsprop", {}), ("adam", dict(lr=1e-2)), ("heavy_ball", dict(lr=0.05)))
          for _ in range(2)]
"""Blocks whose rows share every setting: the scalar path (torch.optim's own arithmetic)."""
P = 37


def gradient(theta, step: int, row: int):
    """Row ``row``'s gradient: a diagonal quadratic's, so it depends on where the row is and a wrong update
    shows in every later step, plus a noise fixed by (step, row)."""
    curvature = torch.linspace(0.1, 3.0, P, dtype=torch.float64)
    noise = torch.randn(P, generator=torch.Generator().manual_seed(1000 * step + row), dtype=torch.float64)
    return curvature * (theta - 1.0) + 0.3 * noise


@pytest.mark.parametrize("runs", [RUNS, SHARED], ids=["per-row settings", "shared settings"])
def test_the_stacked_rows_step_as_torch_optim_does_row_by_row(runs):
    names = [n for n, _ in runs]
    settings = [resolve_hyper(n, **kw) for n, kw in runs]
    start = torch.randn(len(runs), P, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    flat, grad = start.clone(), torch.zeros_like(start)
    stacked = StackedOptimizers(flat, grad, names, settings)
    if runs is RUNS:
        assert [b.rows for b in stacked.blocks] == [slice(0, 5), slice(5, 7), slice(7, 9), slice(11, 13),
                                                     slice(13, 15)]
        assert sorted(stacked.single) == [9, 10]
    else:
        assert len(stacked.blocks) == 6 and not stacked.single
    rows = [start[k].clone().requires_grad_() for k in range(len(runs))]
    references = [make(n, [row], **kw) for (n, kw), row in zip(runs, rows, strict=True)]
    base = [s["lr"] for s in settings]
    for step in range(40):
        factor = 1 / (step + 1) ** 0.5         # a schedule changes η each step
        stacked.set_lrs([b * factor for b in base])
        for k in range(len(runs)):
            grad[k] = gradient(flat[k], step, k)
        stacked.step()
        for k, (row, opt, b) in enumerate(zip(rows, references, base, strict=True)):
            opt.param_groups[0]["lr"] = b * factor
            row.grad = gradient(row.detach(), step, k)
            opt.step()
    for k, (name, _) in enumerate(runs):
        torch.testing.assert_close(flat[k], rows[k].detach(), rtol=1e-12, atol=1e-12, msg=f"row {k}: {name}")
        assert not torch.equal(flat[k], start[k])


def test_the_rules():
    settings = resolve_hyper
    assert rule("nesterov", settings("nesterov")) == rule("gd", settings("gd")) == "sgd"
    assert rule("rmsprop", settings("rmsprop", momentum=0.5)) is None
    assert rule("adam", settings("adam", amsgrad=True)) is None
    assert rule("adam", settings("adam")) == "adam"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_frozen_row_is_left_alone_by_the_other_rows_nan(dtype):
    # a NaN gradient in one row must not reach another row of its block (the norms and moments are per row)
    flat = torch.ones(3, 5, dtype=dtype)
    grad = torch.full_like(flat, 0.5)
    grad[1] = float("nan")
    for name in ("adagrad_norm", "adam", "nesterov"):
        stacked = StackedOptimizers(flat, grad, [name] * 3, [resolve_hyper(name)] * 3)
        stacked.step()
        assert torch.isfinite(flat[[0, 2]]).all() and torch.isnan(flat[1]).all()
        flat.fill_(1.0)
