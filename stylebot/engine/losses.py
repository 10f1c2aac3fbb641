"""The three loss terms, each written once: the whole-image graph and the strip path use the same formulas
(value, and for the style term the hand-written gradient coefficient)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ContentLoss", "StyleLoss", "TVLoss", "flat", "gram_mse", "gram_mse_coeff"]


def flat(f: torch.Tensor) -> torch.Tensor:
    """(1, c, h, w) -> (h·w, c); a view for channels-last tensors. FᵀF of it is the (unnormalised) Gram."""
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])


def gram_mse(diff: torch.Tensor, weight: float) -> torch.Tensor:
    """The style term of one layer from ``diff`` = Gram - target Gram: weight · MSE."""
    return weight * diff.square().mean()


def gram_mse_coeff(diff: torch.Tensor, weight: float, n: int) -> torch.Tensor:
    """``coeff`` with dL/dF = flat(F) @ coeff for :func:`gram_mse`, where Gram = FᵀF/n (n = c·h·w):
    coeff = (dL/dG + dL/dGᵀ)/n = 4·weight·diff/(c²·n). Local per position once the Gram is known,
    which is what lets the strip path back-propagate strip by strip."""
    return diff * (4.0 * weight / (diff.numel() * n))


class _GramMSE(torch.autograd.Function):
    """weight · MSE(FᵀF/N, target) with a hand-written backward (:func:`gram_mse_coeff`).

    ``flat`` is the (h·w, c) view of a feature map (see :func:`flat`) and N = c·h·w. The normalisation by
    c·h·w (not by h·w, nor Gatys' 1/(4N²M²)) is the tutorial's, and so the seed objective's.

    Autograd on ``flat.t() @ flat`` would run two matrix products in the backward (one per operand) and
    add their full-size results; the Gram products were the largest share of an evaluation at 256²
    (profiled), so one product and no extra feature-sized buffer is a real saving.
    """

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, target: torch.Tensor, weight: float, n: int) -> torch.Tensor:
        diff = (flat.t() @ flat).float().div_(n).sub_(target)
        ctx.save_for_backward(flat, diff)
        ctx.weight, ctx.n = weight, n
        return gram_mse(diff, weight)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        flat, diff = ctx.saved_tensors
        coeff = (gram_mse_coeff(diff, ctx.weight, ctx.n) * grad_out).to(flat.dtype)
        return flat @ coeff, None, None, None


class StyleLoss(nn.Module):
    """weight · MSE(Gram(features), target Gram)."""

    target: torch.Tensor

    def __init__(self, target_gram: torch.Tensor, weight: float) -> None:
        super().__init__()
        self.register_buffer("target", target_gram)
        self.weight = weight

    def forward(self, f: torch.Tensor, gram: bool = False) -> torch.Tensor:
        """``f``: features (1, c, h, w), or their Gram matrix already when ``gram`` is true."""
        if gram:
            return gram_mse(f - self.target, self.weight)
        _, c, h, w = f.shape
        return _GramMSE.apply(flat(f), self.target, self.weight, c * h * w)

    def value_and_coeff(self, gram: torch.Tensor, n: int) -> tuple[float, torch.Tensor]:
        """For a Gram summed elsewhere (strips): the loss and the coefficient of dL/dF = flat(F) @ coeff."""
        diff = gram - self.target
        return float(gram_mse(diff, self.weight)), gram_mse_coeff(diff, self.weight, n)

    def extra_repr(self) -> str:
        return f"channels={self.target.shape[0]}, weight={self.weight:g}"


class ContentLoss(nn.Module):
    """weight · MSE(features, target features)."""

    target: torch.Tensor

    def __init__(self, target: torch.Tensor, weight: float) -> None:
        super().__init__()
        self.register_buffer("target", target)
        self.weight = weight

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.weight * F.mse_loss(f.float(), self.target.float())

    def from_squared_error(self, sq_sum: float) -> float:
        """The loss from the summed squared error over the whole map (strips add theirs up)."""
        return self.weight * sq_sum / self.target.numel()

    @property
    def grad_scale(self) -> float:
        """d loss / d features = grad_scale · (features - target), the derivative of :meth:`from_squared_error`."""
        return 2.0 * self.weight / self.target.numel()

    def extra_repr(self) -> str:
        return f"shape={tuple(self.target.shape)}, weight={self.weight:g}"


class TVLoss(nn.Module):
    """weight · mean squared difference between neighbouring pixels (a smoothness prior)."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = x[..., :, 1:] - x[..., :, :-1]
        dy = x[..., 1:, :] - x[..., :-1, :]
        return self.weight * (dx.square().mean() + dy.square().mean())
