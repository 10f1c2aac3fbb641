"""The L-BFGS on box-bounded problems whose answer is known: no VGG, milliseconds each."""

from __future__ import annotations

import itertools

import torch

from stylebot.engine.optim import history_for, minimize


def quadratic(target: torch.Tensor, scales: torch.Tensor, calls: list[float]):
    """f(x) = Σ scales·(x − target)², an ill-conditioned bowl; every loss seen is recorded."""

    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        diff = x - target
        loss = float((scales * diff * diff).sum())
        calls.append(loss)
        return loss, 2 * scales * diff

    return evaluate


def test_finds_an_interior_minimum_of_an_ill_conditioned_bowl() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 8, 8, generator=gen) * 0.8 + 0.1
    scales = torch.logspace(0, 2, target.numel()).reshape(target.shape)  # condition number 100
    calls: list[float] = []
    x = minimize(quadratic(target, scales, calls), torch.full_like(target, 0.5), n_evals=80, history=10)
    assert x.shape == target.shape
    assert (x - target).abs().max() < 1e-3
    assert len(calls) <= 80


def test_a_minimum_outside_the_box_lands_on_its_face() -> None:
    target = torch.tensor([[-1.0, 0.25, 2.0, 0.75]])
    calls: list[float] = []
    x = minimize(quadratic(target, torch.ones_like(target), calls), torch.full_like(target, 0.5), 30, 5)
    assert torch.allclose(x, torch.tensor([[0.0, 0.25, 1.0, 0.75]]), atol=1e-4)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_the_returned_point_is_never_worse_than_the_start_and_losses_trend_down() -> None:
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(1, 1, 16, 16, generator=gen)
    scales = torch.rand(target.shape, generator=gen) * 100 + 0.01
    calls: list[float] = []
    start = torch.rand(target.shape, generator=gen)
    x = minimize(quadratic(target, scales, calls), start, n_evals=25, history=3)
    final = float((scales * (x - target) ** 2).sum())
    assert final <= calls[0]
    assert final < calls[0] * 1e-2


def test_the_evaluation_budget_is_a_hard_cap() -> None:
    calls: list[float] = []
    target = torch.zeros(1, 4)
    minimize(quadratic(target, torch.ones_like(target), calls), torch.ones(1, 4), n_evals=3, history=5)
    assert len(calls) == 3


def test_history_shrinks_for_large_images_but_never_below_three() -> None:
    small, large = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 2048, 2048)
    assert history_for(small, 10) == 10
    assert history_for(large, 10) == 3


def test_a_step_that_gives_nan_is_backtracked_not_taken():
    """A trial point whose loss is not a number (an overflow) counts as a failed step: the result is the
    last finite point, never NaN."""
    calls: list[int] = []
    target = torch.full((1, 6), 0.3)

    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        calls.append(1)
        if len(calls) == 2:  # the first trial step blows up
            return float("nan"), torch.full_like(x, float("nan"))
        d = x - target
        return float(d.square().sum()), 2 * d

    x = minimize(evaluate, torch.full((1, 6), 0.9), n_evals=12, history=5)
    assert torch.isfinite(x).all()
    assert float((x - target).abs().max()) < 0.3


def test_no_step_moves_a_pixel_further_than_max_move():
    """A very flat quadratic asks for a huge quasi-Newton step; each accepted move stays within MAX_MOVE."""
    from stylebot.engine.optim import MAX_MOVE

    seen: list[torch.Tensor] = []
    target = torch.tensor([[0.0, 1.0, 0.5, 0.2]])

    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        seen.append(x.clone())
        d = x - target
        return 1e-6 * float(d.square().sum()), 2e-6 * d

    minimize(evaluate, torch.tensor([[1.0, 0.0, 0.5, 0.9]]), n_evals=10, history=5)
    moves = [float((b - a).abs().max()) for a, b in itertools.pairwise(seen)]
    assert max(moves) <= MAX_MOVE + 1e-6
    assert float((seen[-1] - target).abs().max()) < float((seen[0] - target).abs().max())


def test_a_zero_gradient_ends_the_run():
    """At a stationary point there is no descent direction: the solver returns instead of spinning."""
    calls: list[int] = []

    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        calls.append(1)
        return 1.0, torch.zeros_like(x)

    x = minimize(evaluate, torch.full((1, 4), 0.5), n_evals=10, history=3)
    assert torch.equal(x, torch.full((1, 4), 0.5))
    assert len(calls) == 1
