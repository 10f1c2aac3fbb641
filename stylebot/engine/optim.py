"""L-BFGS on the box [0, 1], monotone: the solver of every pyramid level."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["HISTORY_BYTES", "history_for", "minimize"]

#: Cap on the L-BFGS history's memory: at 512² a (s, y) pair is 6.3 MB, so 20 MB keeps 3 pairs there
#: (10 up to 256²); a refinement level of a few evaluations cannot use more than a few pairs anyway.
HISTORY_BYTES = 20 << 20
#: No step moves a pixel by more than this (of its 0..1 range). A longer quasi-Newton step only pushes pixels
#: into the clamp, and halving back from such an overshoot cost rocket x woodcut 10 evaluations in a row at
#: 128 px; tighter caps (0.1, 0.2) slowed it down instead (DESIGN.md, "Inside").
MAX_MOVE = 0.5


def history_for(x: torch.Tensor, history: int) -> int:
    """The recipe's ``history`` pairs, fewer for large images (:data:`HISTORY_BYTES`), never under 3."""
    return min(history, max(3, HISTORY_BYTES // (2 * x.element_size() * x.numel())))


def _forget(*history: list) -> None:
    """Drop the curvature pairs (restart from the gradient)."""
    for h in history:
        h.clear()


def minimize(
    evaluate: Callable[[torch.Tensor], tuple[float, torch.Tensor]], x: torch.Tensor, n_evals: int, history: int
) -> torch.Tensor:
    """Minimise with at most ``n_evals`` calls of ``evaluate(x) -> (loss, grad)``; return the best point.

    Why our own and not ``torch.optim.LBFGS``: (1) the tutorial's ``LBFGS(lr=1)`` without a line search
    lets the loss jump up within the first few evaluations, which the tutorial's 300 evaluations absorb
    but a 10-evaluation refinement level cannot; here a step that raises the loss is halved and retried,
    so the loss only goes down. (2) The image is projected on [0, 1] after each step and the curvature
    pair is taken from the projected move, instead of clamping behind the optimiser's back. (3) Importing
    ``torch.optim`` pulls in ``torch._dynamo`` (seconds and tens of MB of RSS on first use). (4) The
    history is exactly ``history`` pairs of image-sized vectors and nothing else.

    Every tensor passed to ``evaluate`` keeps its values afterwards: a progress callback may hold on to
    it (the CLI renders the last one after Ctrl-C), so trial points are never reused as scratch memory.
    """
    shape = x.shape
    x = x.detach().reshape(-1).clamp(0, 1)
    f, g = evaluate(x.view(shape))
    g = g.reshape(-1)
    evals = 1
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    rho: list[float] = []
    t = 1.0
    while evals < n_evals:
        d = _direction(g, s_hist, y_hist, rho)
        if not float(g.dot(d)) < 0:  # not a descent direction (stale curvature): restart from the gradient
            if not s_hist:  # even the gradient is not: a stationary point, nothing left to do
                break
            _forget(s_hist, y_hist, rho)
            continue
        biggest = float(d.abs().max())
        if biggest > MAX_MOVE:
            d.mul_(MAX_MOVE / biggest)
        # Try the step; halve it while the loss goes up (each try costs an evaluation).
        x_new = x.add(d, alpha=t).clamp_(0, 1)
        f_new, g_new = evaluate(x_new.view(shape))
        g_new = g_new.reshape(-1)
        evals += 1
        if not f_new <= f:  # up, or not a number
            t = _backtrack(t, f, f_new, float(g.dot(d)))
            if t < 1e-3:  # no progress along this history: start over from the gradient
                _forget(s_hist, y_hist, rho)
                t = 1.0
            continue
        t = min(1.0, t * 2)
        # New memory for the move and the point (same values as in place): x and x_new were shown to a
        # progress callback. Reusing x_new for the step made Ctrl-C in the CLI save a near-black image.
        s_new = x_new.sub(x)
        y_new = g_new.sub(g)
        x = x.add(s_new)
        f, g = f_new, g_new
        _remember(s_hist, y_hist, rho, s_new, y_new, history)
    return x.view(shape)


def _direction(
    g: torch.Tensor, s_hist: list[torch.Tensor], y_hist: list[torch.Tensor], rho: list[float]
) -> torch.Tensor:
    """L-BFGS two-loop recursion: d = -H g, with H0 = (s·y / y·y) I from the newest pair."""
    q = g.neg()
    alphas = []
    for s_i, y_i, r_i in zip(reversed(s_hist), reversed(y_hist), reversed(rho)):
        a = r_i * float(s_i.dot(q))
        q.add_(y_i, alpha=-a)
        alphas.append(a)
    if s_hist:
        q.mul_(float(s_hist[-1].dot(y_hist[-1])) / float(y_hist[-1].dot(y_hist[-1])))
        for s_i, y_i, r_i, a in zip(s_hist, y_hist, rho, reversed(alphas)):
            b = r_i * float(y_i.dot(q))
            q.add_(s_i, alpha=a - b)
    else:
        # No curvature yet: a gradient step that moves no pixel by more than 5% of its range.
        q.mul_(0.05 / max(float(q.abs().max()), 1e-12))
    return q


def _remember(
    s_hist: list[torch.Tensor],
    y_hist: list[torch.Tensor],
    rho: list[float],
    s_new: torch.Tensor,
    y_new: torch.Tensor,
    history: int,
) -> None:
    """Add the pair (move, gradient change) if its curvature is positive; keep the newest ``history``."""
    sy = float(s_new.dot(y_new))
    if sy > 1e-10 * float(y_new.dot(y_new)):
        s_hist.append(s_new)
        y_hist.append(y_new)
        rho.append(1.0 / sy)
        if len(s_hist) > history:
            del s_hist[0], y_hist[0], rho[0]


def _backtrack(t: float, f: float, f_new: float, gd: float) -> float:
    """The next trial step after ``t`` raised the loss from ``f`` to ``f_new`` (slope ``gd`` at 0).

    The minimum of the quadratic through f, the slope and f_new, kept within [0.1t, 0.5t]: it reaches an
    acceptable step in fewer evaluations than plain halving. A non-finite ``f_new`` gives 0.1t.
    """
    t_quad = -gd * t * t / (2 * (f_new - f - gd * t)) if math.isfinite(f_new) else 0.0
    return min(max(t_quad, 0.1 * t), 0.5 * t)
