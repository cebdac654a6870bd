"""core.training.train against a hand-written torch.optim loop, divergence, cancel, schedules, accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import data, nets, training
from core.training import Diverged


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


SMALL = nets.NetSpec(64, (32,), 10)


def test_default_digits_mlp_reaches_95_percent_over_three_seeds(digits):
    accuracies = []
    for seed in range(3):
        model = nets.build(nets.DIGITS_MLP, seed=seed)
        last = list(training.train(model, digits, optimizer="adam", lr=1e-3, epochs=10, batch_size=64,
                                   seed=seed, every=10_000))[-1]
        accuracies.append(last.test_accuracy)
    assert min(accuracies) >= 0.95, accuracies


def test_one_epoch_equals_a_hand_written_torch_optim_loop(digits):
    model = nets.build(SMALL, seed=1)
    reference = nets.clone(model)
    records = list(training.train(model, digits, optimizer="heavy_ball", lr=0.05, momentum=0.9, epochs=2,
                                  batch_size=100, seed=7, every=5))
    opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(7)
    losses = []
    for _ in range(2):
        order = torch.randperm(digits.n_train, generator=g)
        for start in range(0, digits.n_train, 100):
            idx = order[start:start + 100]
            opt.zero_grad()
            loss = F.cross_entropy(reference(digits.x_train[idx]), digits.y_train[idx])
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    steps = [r.step for r in records]
    assert steps == [0, 5, 10, 15, 20, 25, 28]       # 14 steps per epoch (1347 / 100, last batch 47)
    assert records[1].train_loss == pytest.approx(sum(losses[:5]) / 5, rel=1e-6)
    assert records[-1].epoch == 2.0
    test_loss, accuracy = training.evaluate(reference, digits.x_test, digits.y_test)
    assert records[-1].test_loss == pytest.approx(test_loss) and records[-1].test_accuracy == accuracy


def test_gd_is_full_batch_gradient_descent(digits):
    model = nets.build(SMALL, seed=2)
    reference = nets.clone(model)
    records = list(training.train(model, digits, optimizer="gd", lr=0.5, epochs=3, batch_size=64))
    assert [r.step for r in records] == [0, 1, 2, 3]
    for _ in range(3):
        loss = F.cross_entropy(reference(digits.x_train), digits.y_train)
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for p, gr in zip(reference.parameters(), grads, strict=True):
                p -= 0.5 * gr
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert records[1].grad_norm > 0


def test_seeded_runs_are_bit_for_bit_repeatable(digits):
    runs = []
    for _ in range(2):
        model = nets.build(SMALL, seed=3)
        recs = list(training.train(model, digits, optimizer="adam", lr=1e-2, epochs=2, batch_size=32, seed=11))
        curve = [(r.train_loss, r.test_loss, r.grad_norm) for r in recs]
        runs.append((curve, [p.detach() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    other = nets.build(SMALL, seed=3)
    list(training.train(other, digits, optimizer="adam", lr=1e-2, epochs=2, batch_size=32, seed=12))
    assert not torch.equal(other.linears[0].weight, runs[0][1][0])


def test_a_nan_loss_ends_the_run_naming_the_step(digits):
    model = nets.build(SMALL, seed=0)
    calls = []

    def poisoned(model, x, y):
        calls.append(1)
        loss = F.cross_entropy(model(x), y)
        return loss * float("nan") if len(calls) == 37 else loss

    seen = []
    with pytest.raises(Diverged, match=r"^diverged at step 37: .*learning rate") as err:
        for record in training.train(model, digits, lr=0.01, epochs=5, batch_size=64, every=10, loss_fn=poisoned):
            seen.append(record)
    assert err.value.step == 37
    assert [r.step for r in seen] == [0, 10, 20, 30]
    assert all(math.isfinite(v) for r in seen for v in (r.train_loss, r.test_loss, r.grad_norm))


def test_a_huge_learning_rate_diverges_with_a_message_not_a_nan(digits):
    model = nets.build(nets.DIGITS_MLP, seed=0)
    seen = []
    with pytest.raises(Diverged) as err:
        for record in training.train(model, digits, optimizer="sgd", lr=1e4, epochs=20, batch_size=64, every=1):
            seen.append(record)
    assert str(err.value).startswith(f"diverged at step {err.value.step}: ")
    assert "η = 10000" in str(err.value)
    assert len(seen) == err.value.step        # records for steps 0 … step − 1, all finite
    assert all(math.isfinite(r.train_loss) and math.isfinite(r.test_loss) for r in seen)


def test_closing_the_generator_mid_epoch_stops_at_once(digits):
    model = nets.build(SMALL, seed=0)
    steps = []
    run = training.train(model, digits, lr=0.1, epochs=50, batch_size=16, every=3,
                         step_hook=lambda m, step: steps.append(step))
    for record in run:
        if record.step >= 9:
            break
    run.close()
    assert record.step == 9 and record.epoch < 1
    assert steps == list(range(1, 10))   # no optimiser step after the record the consumer stopped at


@pytest.mark.parametrize("schedule", training.SCHEDULES)
def test_schedules_scale_the_learning_rate_per_step(digits, schedule):
    model = nets.build(SMALL, seed=0)
    records = list(training.train(model, digits, optimizer="sgd", lr=0.2, epochs=2, batch_size=256,
                                  every=1, schedule=schedule))
    total = 2 * math.ceil(digits.n_train / 256)
    expected = {"constant": lambda k: 1.0, "1/k": lambda k: 1.0 / k, "1/sqrt(k)": lambda k: k ** -0.5,
                "cosine": lambda k: 0.5 * (1 + math.cos(math.pi * (k - 1) / total))}[schedule]
    for r in records[1:]:
        assert r.lr == pytest.approx(0.2 * expected(r.step), rel=1e-12)


def test_regression_uses_half_mean_squared_error(digits):
    teacher = data.load("teacher", n=200, inputs=3, hidden=4)
    model = nets.build(nets.NetSpec(3, (16,), 1, phi="tanh"), seed=0)
    records = list(training.train(model, teacher, optimizer="adam", lr=1e-2, epochs=30, batch_size=None))
    assert records[-1].test_accuracy is None
    with torch.no_grad():
        half_mse = 0.5 * float((model(teacher.x_test) - teacher.y_test).pow(2).mean())
    assert records[-1].test_loss == pytest.approx(half_mse, rel=1e-6)
    assert records[-1].train_loss < 0.5 * records[0].train_loss


def test_evaluate_is_cross_entropy_and_argmax_accuracy(digits):
    model = nets.build(SMALL, seed=4)
    loss, accuracy = training.evaluate(model, digits.x_test, digits.y_test, chunk=100)
    with torch.no_grad():
        out = model(digits.x_test)
    assert loss == pytest.approx(float(F.cross_entropy(out, digits.y_test)), rel=1e-6)
    assert accuracy == pytest.approx(float((out.argmax(1) == digits.y_test).float().mean()))


def test_bad_arguments_are_refused_by_name(digits):
    model = nets.build(SMALL)
    with pytest.raises(ValueError, match="epochs"):
        next(training.train(model, digits, lr=0.1, epochs=-1))
    with pytest.raises(ValueError, match="schedule"):
        next(training.train(model, digits, lr=0.1, epochs=1, schedule="step"))
    with pytest.raises(ValueError, match="batch_size"):
        next(training.train(model, digits, lr=0.1, epochs=1, batch_size=2.5))
    with pytest.raises(ValueError, match="lr"):
        next(training.train(model, digits, lr=-1.0, epochs=1))
    with pytest.raises(ValueError, match="unknown name"):
        next(training.train(model, digits, optimizer="lbfgs", lr=0.1, epochs=1))


# -- train_many: K models as one batched model ----------------------------------------------------------

MANY = dict(optimizer=["sgd", "adam", "heavy_ball", "adagrad_norm", "gd", "rmsprop", "nesterov", "adagrad"],
            lr=[0.2, 3e-3, 0.05, 0.5, 0.5, 1e-3, 0.05, 0.05], seed=[0, 1, 2, 3, 4, 5, 6, 7])


def separate(spec, digits, k, **kw):
    model = nets.build(spec, seed=MANY["seed"][k])
    records = list(training.train(model, digits, optimizer=MANY["optimizer"][k], lr=MANY["lr"][k],
                                  seed=MANY["seed"][k], **kw))
    return model, records


@pytest.mark.parametrize("spec", [SMALL, nets.NetSpec(64, (24, 24), 10, phi="tanh", residual=True)])
def test_a_batched_run_equals_k_separate_runs(digits, spec):
    models = [nets.build(spec, seed=s) for s in MANY["seed"]]
    records = list(training.train_many(models, digits, epochs=2, batch_size=100, schedule="1/sqrt(k)", **MANY))
    final = records[-1]
    assert final.models == tuple(models) and final.diverged == () and final.alive.all()
    assert final.step.tolist() == [28, 28, 28, 28, 2, 28, 28, 28]       # gd: one full-batch step per epoch
    for k in range(len(models)):
        model, alone = separate(spec, digits, k, epochs=2, batch_size=100, schedule="1/sqrt(k)")
        for p, q in zip(model.parameters(), models[k].parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=0, atol=1e-5)
        assert final.test_loss[k] == pytest.approx(alone[-1].test_loss, abs=1e-5)
        assert final.test_accuracy[k] == pytest.approx(alone[-1].test_accuracy, abs=1 / digits.n_test)
        assert final.lr[k] == pytest.approx(alone[-1].lr, rel=1e-12)
        assert records[0].test_loss[k] == pytest.approx(alone[0].test_loss, abs=1e-5)


def test_a_diverged_run_is_frozen_and_reported_while_the_others_go_on():
    teacher = data.load("teacher", n=200, inputs=3, hidden=4)
    spec = nets.NetSpec(3, (16,), 1)
    lrs = [0.1, 10.0, 0.05]
    models = [nets.build(spec, seed=s) for s in range(3)]
    records = list(training.train_many(models, teacher, optimizer="sgd", lr=lrs, seed=[0, 1, 2], epochs=3,
                                       batch_size=16, every=4))
    with pytest.raises(Diverged) as err:
        list(training.train(nets.build(spec, seed=1), teacher, optimizer="sgd", lr=10.0, seed=1, epochs=3,
                            batch_size=16, every=1000))
    final = records[-1]
    assert final.diverged == ((1, err.value.step),)
    assert final.alive.tolist() == [True, False, True]
    assert final.step.tolist() == [30, err.value.step, 30]   # 150 points, 10 steps per epoch
    assert final.test_accuracy is None
    assert all(np.isfinite(r.train_loss).all() and np.isfinite(r.test_loss).all() for r in records)
    alone = nets.build(spec, seed=2)
    list(training.train(alone, teacher, optimizer="sgd", lr=0.05, seed=2, epochs=3, batch_size=16))
    for p, q in zip(alone.parameters(), models[2].parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-5)


def test_closing_train_many_stops_and_writes_the_weights_back(digits):
    models = [nets.build(SMALL, seed=s) for s in range(2)]
    before = models[0].linears[0].weight.detach().clone()
    run = training.train_many(models, digits, optimizer="adam", lr=1e-2, seed=[0, 1], epochs=20, batch_size=32,
                              every=5)
    for record in run:
        if record.step[0] >= 10:
            break
    run.close()
    assert record.step.tolist() == [10, 10] and record.models is None
    assert not torch.equal(models[0].linears[0].weight, before)
    ref = nets.build(SMALL, seed=0)
    alone = training.train(ref, digits, optimizer="adam", lr=1e-2, seed=0, epochs=20, batch_size=32, every=10)
    next(alone)
    next(alone)
    alone.close()
    torch.testing.assert_close(models[0].linears[0].weight, ref.linears[0].weight, rtol=0, atol=1e-5)


def test_train_many_refuses_what_it_cannot_batch(digits):
    with pytest.raises(ValueError, match="one spec"):
        next(training.train_many([nets.build(SMALL), nets.build(nets.DIGITS_MLP)], digits, lr=0.1, epochs=1))
    bn = nets.NetSpec(64, (8,), 10, batch_norm=True)
    with pytest.raises(ValueError, match="batch-norm"):
        next(training.train_many([nets.build(bn)], digits, lr=0.1, epochs=1))
    with pytest.raises(ValueError, match="lr: 3 values for 2 models"):
        next(training.train_many([nets.build(SMALL), nets.build(SMALL)], digits, lr=[0.1, 0.2, 0.3], epochs=1))
