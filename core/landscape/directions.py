"""Random directions in parameter space, normalised as Li et al. (2018) do, and flat-vector helpers.

A *direction* is a list of tensors shaped like ``model.parameters()`` (the order of
``model.named_parameters()``). Li et al.'s filter normalisation rescales each filter of the direction —
for a ``Linear`` layer, each output row — to the norm of the same filter of the weights, so a direction
moves every neuron by the same relative amount and the picture no longer depends on the scale of the
weights (ReLU nets are invariant to a per-neuron rescaling). Parameters with one dimension (biases,
batch-norm scales and shifts) get a zero direction, as in their code's ``ignore="biasbn"``.

Reference: H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of neural
nets", NeurIPS 2018, arXiv:1712.09913, §4 (filter normalisation).
"""

from __future__ import annotations

import torch

NORMALISATIONS = ("filter", "layer", "none")
_EPS = 1e-10   # as Li et al.'s code: a zero filter of the direction stays zero


def parameters_of(model: torch.nn.Module) -> list[torch.Tensor]:
    """The model's parameters, detached, in ``named_parameters()`` order."""
    return [p.detach() for _, p in model.named_parameters()]


def random_direction(model: torch.nn.Module, seed: int = 0, norm: str = "filter",
                     ignore_bias: bool = True) -> list[torch.Tensor]:
    """A Gaussian random direction shaped like the model's parameters, normalised per ``norm``.

    Parameters
    ----------
    model : torch.nn.Module
    seed : int
        Seeds a private ``torch.Generator`` (CPU, so the direction is the same on every device): the same
        seed gives the same direction, so a surface can be reproduced from its seeds.
    norm : {"filter", "layer", "none"}
        ``filter``: each row d_i (one output neuron of a Linear layer, one filter of a conv) rescaled to
        ‖θ_i‖ (Li et al. 2018, eq. in §4); ``layer``: each tensor rescaled to ‖θ‖; ``none``: the raw
        N(0, 1) direction.
    ignore_bias : bool
        Zero the direction of every one-dimensional parameter (biases, batch-norm), as Li et al. do.

    Returns
    -------
    list of torch.Tensor
        One tensor per parameter, on the parameter's device and dtype.
    """
    if norm not in NORMALISATIONS:
        raise ValueError(f"normalisation {norm!r} is not one of {', '.join(NORMALISATIONS)}")
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for theta in parameters_of(model):
        d = torch.randn(theta.shape, generator=gen, dtype=torch.float64)
        theta64 = theta.to("cpu", torch.float64)
        if theta.dim() <= 1 and ignore_bias:
            d.zero_()
        elif norm == "filter":
            if theta.dim() <= 1:
                d *= theta64.norm() / (d.norm() + _EPS)
            else:
                rows_d = d.reshape(d.shape[0], -1)
                rows_t = theta64.reshape(theta.shape[0], -1)
                rows_d *= (rows_t.norm(dim=1) / (rows_d.norm(dim=1) + _EPS))[:, None]
        elif norm == "layer":
            d *= theta64.norm() / (d.norm() + _EPS)
        out.append(d.to(theta.device, theta.dtype))
    return out


def filter_normalized_direction(model: torch.nn.Module, seed: int = 0) -> list[torch.Tensor]:
    """Li et al.'s filter-normalised random direction (biases and batch-norm zero); see :func:`random_direction`."""
    return random_direction(model, seed=seed, norm="filter")


def check_direction(model: torch.nn.Module, direction) -> list[torch.Tensor]:
    """``direction`` as a list of tensors matching the model's parameters, or ValueError naming the mismatch."""
    params = parameters_of(model)
    direction = list(direction)
    if len(direction) != len(params):
        raise ValueError(f"a direction needs {len(params)} tensors (one per parameter), got {len(direction)}")
    out = []
    for i, (d, p) in enumerate(zip(direction, params, strict=True)):
        d = torch.as_tensor(d)
        if tuple(d.shape) != tuple(p.shape):
            raise ValueError(f"direction tensor {i} has shape {tuple(d.shape)}, the parameter has {tuple(p.shape)}")
        if not torch.isfinite(d).all():
            raise ValueError(f"direction tensor {i} holds NaN or infinite values")
        out.append(d.to(p.device, p.dtype))
    return out


def flatten(tensors) -> torch.Tensor:
    """One flat vector of a list of tensors (in order)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like) -> list[torch.Tensor]:
    """Split a flat vector into tensors shaped like ``like``."""
    out, start = [], 0
    for t in like:
        n = t.numel()
        out.append(vector[start:start + n].reshape(t.shape))
        start += n
    return out


def difference(model_b: torch.nn.Module, model_a: torch.nn.Module) -> list[torch.Tensor]:
    """θ_b − θ_a as a direction (the two models must have the same parameter shapes)."""
    a, b = parameters_of(model_a), parameters_of(model_b)
    if [t.shape for t in a] != [t.shape for t in b]:
        raise ValueError("the two models do not have the same parameter shapes")
    return [tb - ta for ta, tb in zip(a, b, strict=True)]
