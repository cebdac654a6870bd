"""Certificates: interval bound propagation, CROWN-style linear bounds, and the Lipschitz bound.

All bounds are over the box ``[x − ε, x + ε] ∩ [0, 1]`` and hold for every input in it. They read the
network as a plain chain of ``nn.Linear`` layers and element-wise activations (an ``nn.Sequential``, or a
``core.nets`` MLP without batch norm or residual connections).

References
----------
- S. Gowal, K. Dvijotham, R. Stanforth, et al., "On the effectiveness of interval bound propagation for
  training verifiably robust models", arXiv:1810.12715 (2018): IBP, the elided last layer, IBP training.
- H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh, L. Daniel, "Efficient neural network robustness
  certification with general activation functions" (CROWN), NeurIPS 2018, arXiv:1811.00866.
- E. Wong, J. Z. Kolter, "Provable defenses against adversarial examples via the convex outer
  adversarial polytope", ICML 2018, arXiv:1711.00851.
- Y. Tsuzuku, I. Sato, M. Sugiyama, "Lipschitz-margin training", NeurIPS 2018, arXiv:1802.04034: a
  margin m certifies the L2 radius m / (√2 Lip).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.robustness.attacks import CHUNK, RobustnessError, check_eps, check_inputs, device_of

MONOTONE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.ELU, nn.Softplus, nn.ReLU6, nn.Identity)
"""Element-wise non-decreasing activations: the interval of φ(z) is [φ(l), φ(u)]."""
LIPSCHITZ_ONE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.ReLU6, nn.Identity)

_PHI_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity,
                "identity": nn.Identity, "hard_tanh": nn.Hardtanh}


def layers(model: nn.Module) -> list[nn.Module]:
    """``model`` as a flat chain [Linear, φ, Linear, φ, …, Linear], or RobustnessError saying why not."""
    if isinstance(model, nn.Sequential):
        chain = []
        for m in model:
            if isinstance(m, nn.Sequential):
                chain += layers(m)
            elif isinstance(m, nn.Flatten | nn.Dropout):
                continue
            else:
                chain.append(m)
    elif hasattr(model, "linears"):
        spec = getattr(model, "spec", None)
        if spec is not None and (getattr(spec, "batch_norm", False) or getattr(spec, "residual", False)):
            raise RobustnessError("certificates need a plain MLP: this net has batch norm or residual links")
        phi = getattr(spec, "phi", "relu") if spec is not None else "relu"
        if phi not in _PHI_MODULES:
            raise RobustnessError(f"certificates need a monotone activation (relu, tanh, …), not {phi!r}")
        linears = list(model.linears)
        chain = []
        for i, lin in enumerate(linears):
            chain.append(lin)
            if i < len(linears) - 1:
                chain.append(_PHI_MODULES[phi]())
    else:
        raise RobustnessError(f"cannot read {type(model).__name__} as a chain of Linear layers and activations")
    for m in chain:
        if not isinstance(m, (nn.Linear, *MONOTONE)):
            raise RobustnessError(f"certificates cannot bound a {type(m).__name__} layer (Linear and monotone "
                                  "activations only)")
    if not chain or not isinstance(chain[-1], nn.Linear):
        raise RobustnessError("the network must end with a Linear layer")
    return chain


def input_box(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """[x − ε, x + ε] ∩ [0, 1]."""
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def _affine_interval(lower, upper, weight, bias):
    """Exact range of W z + b over the box [lower, upper] (centre-radius form)."""
    mid, rad = (upper + lower) / 2, (upper - lower) / 2
    if weight.dim() == 2:
        centre, spread = mid @ weight.T, rad @ weight.abs().T
    else:  # per-example weights (n, m, d), e.g. a margin specification folded into the last layer
        centre, spread = torch.einsum("nmd,nd->nm", weight, mid), torch.einsum("nmd,nd->nm", weight.abs(), rad)
    if bias is not None:
        centre = centre + bias
    return centre - spread, centre + spread


def _spec_layer(layer: nn.Linear, spec):
    """The last layer's weight and bias composed with a specification C (n, m, K): C W and C b."""
    if spec is None:
        return layer.weight, layer.bias
    weight = torch.einsum("nmk,kd->nmd", spec, layer.weight)
    bias = None if layer.bias is None else torch.einsum("nmk,k->nm", spec, layer.bias)
    return weight, bias


def _ibp_chain(chain, lower, upper, spec=None, keep=False):
    """IBP through ``chain``; with ``keep`` also the pre-activation bounds of every hidden layer."""
    pre = []
    last = len(chain) - 1
    for i, layer in enumerate(chain):
        if isinstance(layer, nn.Linear):
            w, b = _spec_layer(layer, spec) if i == last else (layer.weight, layer.bias)
            lower, upper = _affine_interval(lower, upper, w, b)
            if keep and i < last:
                pre.append((lower, upper))
        else:
            lower, upper = layer(lower), layer(upper)
    return (lower, upper, pre) if keep else (lower, upper)


def margin_spec(y: torch.Tensor, classes: int) -> torch.Tensor:
    """C (n, K, K) with rows e_y − e_k: C z is the margin z_y − z_k of each class (the row k = y is zero)."""
    eye = torch.eye(classes, device=y.device)
    return eye[y][:, None, :] - eye[None, :, :]


def _prepared(model, x, eps):
    x = torch.as_tensor(x).to(device_of(model), torch.float32)
    check_inputs(x)
    return x, check_eps(eps)


def interval_bounds(model, x, eps) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval bound propagation (Gowal et al. 2018, eq. 6): element-wise bounds (lower, upper), each
    (n, classes), on the logits over the box [x − ε, x + ε] ∩ [0, 1]. Differentiable (IBP training)."""
    x, eps = _prepared(model, x, eps)
    chain = layers(model)
    return _ibp_chain(chain, *input_box(x, eps))


def _relu_relaxation(lower, upper):
    """CROWN's linear bounds a z ≤ relu(z) ≤ s z + t on [l, u]: s = u/(u − l), t = −u l/(u − l) where l < 0 < u;
    the lower slope a = 1 where u > −l, else 0 (the adaptive choice of Zhang et al. 2018, §3.2)."""
    active, inactive = lower >= 0, upper <= 0
    unstable = ~(active | inactive)
    width = (upper - lower).clamp_min(1e-12)
    s = torch.where(active, 1.0, torch.where(unstable, upper / width, 0.0))
    t = torch.where(unstable, -upper * lower / width, 0.0)
    a = torch.where(active, 1.0, torch.where(unstable & (upper > -lower), 1.0, 0.0))
    return s, t, a


def _backward_bounds(linears, k, pre, lower_x, upper_x, spec=None):
    """Bounds on C z_k (or z_k itself) by back-substitution through layers k−1 … 0, each ReLU replaced by
    its linear relaxation on the pre-activation bounds ``pre`` (Zhang et al. 2018, Theorem 3.2)."""
    weight, bias = _spec_layer(linears[k], spec)
    n = lower_x.shape[0]
    if weight.dim() == 2:
        weight = weight.expand(n, *weight.shape)
        bias = None if bias is None else bias.expand(n, -1)
    a_up, a_lo = weight, weight
    b_up = b_lo = bias if bias is not None else weight.new_zeros(weight.shape[:2])
    for j in range(k - 1, -1, -1):
        s, t, a = (v[:, None, :] for v in _relu_relaxation(*pre[j]))
        pos, neg = a_up.clamp(min=0), a_up.clamp(max=0)
        b_up = b_up + (pos * t).sum(-1)
        a_up = pos * s + neg * a
        pos, neg = a_lo.clamp(min=0), a_lo.clamp(max=0)
        b_lo = b_lo + (neg * t).sum(-1)
        a_lo = pos * a + neg * s
        lin = linears[j]
        if lin.bias is not None:
            b_up = b_up + a_up @ lin.bias
            b_lo = b_lo + a_lo @ lin.bias
        a_up, a_lo = a_up @ lin.weight, a_lo @ lin.weight
    mid, rad = (upper_x + lower_x) / 2, (upper_x - lower_x) / 2
    upper = torch.einsum("nmd,nd->nm", a_up, mid) + torch.einsum("nmd,nd->nm", a_up.abs(), rad) + b_up
    lower = torch.einsum("nmd,nd->nm", a_lo, mid) - torch.einsum("nmd,nd->nm", a_lo.abs(), rad) + b_lo
    return lower, upper


def _relu_linears(chain):
    linears = [m for m in chain if isinstance(m, nn.Linear)]
    acts = [m for m in chain if not isinstance(m, nn.Linear)]
    if any(not isinstance(m, nn.ReLU) for m in acts) or len(acts) != len(linears) - 1:
        raise RobustnessError("linear (CROWN) bounds are implemented for ReLU MLPs: Linear and ReLU "
                              "alternating")
    return linears


def _linear_chain(chain, lower_x, upper_x, spec=None):
    """CROWN bounds on the output (or C · output), each hidden layer's bounds the tighter of CROWN's and
    IBP's (both are sound, so is their intersection), and so the result never looser than IBP's."""
    linears = _relu_linears(chain)
    pre = []
    lo, up = lower_x, upper_x
    for k in range(len(linears)):
        last = k == len(linears) - 1
        w, b = _spec_layer(linears[k], spec) if last else (linears[k].weight, linears[k].bias)
        ibp_lo, ibp_up = _affine_interval(lo, up, w, b)
        if k == 0:
            z_lo, z_up = ibp_lo, ibp_up      # one affine layer: IBP is already the exact range
        else:
            c_lo, c_up = _backward_bounds(linears, k, pre, lower_x, upper_x, spec if last else None)
            z_lo, z_up = torch.maximum(c_lo, ibp_lo), torch.minimum(c_up, ibp_up)
        if last:
            return z_lo, z_up
        pre.append((z_lo, z_up))
        lo, up = z_lo.clamp_min(0), z_up.clamp_min(0)


def linear_bounds(model, x, eps) -> tuple[torch.Tensor, torch.Tensor]:
    """CROWN-style linear-relaxation bounds (Zhang et al. 2018) on the logits over [x − ε, x + ε] ∩ [0, 1]
    for a ReLU MLP: (lower, upper), each (n, classes), inside IBP's."""
    x, eps = _prepared(model, x, eps)
    chain = layers(model)
    out_lo, out_up = [], []
    for s in range(0, len(x), CHUNK // 8):
        lo, up = _linear_chain(chain, *input_box(x[s:s + CHUNK // 8], eps))
        out_lo.append(lo)
        out_up.append(up)
    return torch.cat(out_lo), torch.cat(out_up)


def margin_lower_bounds(model, x, y, eps, method: str = "ibp") -> torch.Tensor:
    """Lower bounds (n, K) on the margins z_y − z_k over the box (+inf at k = y), the specification folded
    into the last layer (Gowal et al.'s elision), by ``method`` "ibp" or "crown". Differentiable."""
    x, eps = _prepared(model, x, eps)
    y = torch.as_tensor(y).to(x.device, torch.long)
    chain = layers(model)
    classes = chain[-1].out_features
    parts = []
    step = CHUNK if method == "ibp" else CHUNK // 8
    for s in range(0, len(x), step):
        xs, ys = x[s:s + step], y[s:s + step]
        spec = margin_spec(ys, classes)
        box = input_box(xs, eps)
        if method == "ibp":
            lo, _ = _ibp_chain(chain, *box, spec=spec)
        elif method == "crown":
            lo, _ = _linear_chain(chain, *box, spec=spec)
            lo = torch.maximum(lo, _ibp_chain(chain, *box, spec=spec)[0])
        else:
            raise RobustnessError(f"method {method!r} is not one of 'ibp', 'crown'")
        parts.append(lo.masked_fill(torch.nn.functional.one_hot(ys, classes).bool(), math.inf))
    return torch.cat(parts) if parts else torch.zeros(0, classes, device=x.device)


def certified(model, x, y, eps, method: str = "ibp") -> torch.Tensor:
    """(n,) bool: every input of the box is classified y (all margin lower bounds > 0)."""
    with torch.no_grad():
        return (margin_lower_bounds(model, x, y, eps, method) > 0).all(1)


def certified_accuracy(model, x, y, eps, method: str = "ibp") -> float:
    """Fraction of examples proven correct on the whole box [x − ε, x + ε] ∩ [0, 1] (method "ibp" or
    "crown"); always ≤ the accuracy under any attack that stays in the box."""
    ok = certified(model, x, y, eps, method)
    return float(ok.float().mean()) if len(ok) else math.nan


def lipschitz_bound(model) -> float:
    """Π_l ‖W_l‖₂, an upper bound on the L2 Lipschitz constant of the logits for 1-Lipschitz activations
    (Szegedy et al. 2014, §4.3)."""
    chain = layers(model)
    for m in chain:
        if not isinstance(m, (nn.Linear, *LIPSCHITZ_ONE)) and not (isinstance(m, nn.LeakyReLU)
                                                                 and abs(m.negative_slope) <= 1):
            raise RobustnessError(f"the Lipschitz bound needs 1-Lipschitz activations, not {type(m).__name__}")
    with torch.no_grad():
        norms = [torch.linalg.matrix_norm(m.weight.double(), ord=2) for m in chain if isinstance(m, nn.Linear)]
    return float(torch.stack(norms).prod())


def margins(model, x, y) -> torch.Tensor:
    """(n,) z_y − max_{k≠y} z_k at x (negative where x is misclassified)."""
    x = torch.as_tensor(x).to(device_of(model), torch.float32)
    y = torch.as_tensor(y).to(x.device, torch.long)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = model(x)
    finally:
        model.train(was)
    own = z.gather(1, y[:, None])[:, 0]
    return own - z.scatter(1, y[:, None], -math.inf).max(1).values


def lipschitz_radius(model, x, y, lipschitz: float | None = None) -> torch.Tensor:
    """(n,) certified L2 radii m / (√2 Lip) (Tsuzuku et al. 2018, Prop. 1), 0 where the margin m ≤ 0."""
    lip = lipschitz_bound(model) if lipschitz is None else float(lipschitz)
    return margins(model, x, y).clamp_min(0) / (math.sqrt(2.0) * lip)
