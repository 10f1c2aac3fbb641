"""The engine: the network loaded once, :meth:`Engine.stylize` solving one job coarse-to-fine, and the
module-level :func:`stylize` for one-off calls.

Coarse-to-fine: five VGG convs see only a 24 px window, so the image is solved first at a small size,
upsampled, and refined at 2x, 4x ... up to the requested size, with most evaluations spent where they are
cheap (see :data:`.params.PRESETS`). Thread safety: the network's weights are read-only and every per-call
tensor (targets, the image, the optimiser's history) lives inside :meth:`Engine.stylize`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import Cancelled
from . import imaging, platform, strips
from .network import load_network
from .objective import Objective
from .optim import history_for, minimize
from .params import Losses, Progress, Recipe, StyleParams, output_size
from .tuning import LevelThreads, use_threads

__all__ = ["DEFAULT_WEIGHTS", "Engine", "stylize"]

log = logging.getLogger(__name__)

#: The weights file next to the top-level ``model.py`` (the repository root).
DEFAULT_WEIGHTS = Path(__file__).parents[2] / "vgg19_cache.pth"
#: What a job gets when the caller passes no params (frozen, so one shared default is safe).
DEFAULT_PARAMS = StyleParams()


class Engine:
    """The VGG slice loaded once; :meth:`stylize` runs one job and may be called from several threads."""

    def __init__(
        self,
        weights: str | os.PathLike[str] = DEFAULT_WEIGHTS,
        device: str = "auto",
        threads: int | None = None,
        *,
        low_memory: bool = True,
        adaptive: bool = True,
    ) -> None:
        """
        :param weights: ``vgg19_cache.pth`` (state dict or the legacy pickle; see ``weights.py``).
        :param device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        :param threads: the most torch intra-op threads a job uses (torch's default when None); with
            ``adaptive`` each level may run on 1 instead, set in the job's own thread (:mod:`.tuning`).
        :param low_memory: on CPU, evaluate large levels in strips and give big blocks back to the OS, so a
            512 px job fits a 512 MB dyno (figures: DESIGN.md, ``bench/strips.py``). Pass False on a
            machine with memory to spare: a little faster per evaluation, several times the peak.
        :param adaptive: on CPU, time each level's first evaluations on 1 thread and on ``threads`` and run
            the rest on the cheaper (:mod:`.tuning`); False keeps ``threads`` throughout (the baseline).
        :raises WeightsError: missing, corrupt or foreign weights file.
        """
        self.device = platform.resolve_device(device)
        low_memory = low_memory and self.device.type == "cpu"  # a GPU has the memory for any level
        self.low_memory = low_memory
        n_threads = platform.set_threads(threads)
        #: The most threads a job uses; each job sets its own count per evaluation (see :mod:`.tuning`).
        self.threads = n_threads
        self.adaptive = adaptive and self.device.type == "cpu" and n_threads > 1 and platform.threads_are_per_thread()
        if self.adaptive and low_memory:
            platform.limit_onednn_cache()
        self.net = load_network(weights, self.device)
        self._bf16_ok = self.device.type == "cuda" or platform.cpu_has_native_bf16()
        #: Levels with more pixels than this are evaluated in strips to bound memory (see strips.py).
        self.tile_px: int | None = strips.TILE_PX if low_memory else None
        log.info(
            "engine ready on %s (threads=%d, %s)",
            self.device,
            n_threads,
            "adaptive per level" if self.adaptive else "fixed",
        )

    # -- helpers -------------------------------------------------------------------------------------------

    def _start_image(self, init: Image.Image, size: tuple[int, int], params: StyleParams) -> torch.Tensor:
        """``init`` as the coarsest level's start, in the same colour space as the content target."""
        lvl = imaging.resize(init.convert("RGB"), size)
        return imaging.to_tensor(imaging.luminance(lvl) if params.luminance_only else lvl, self.device)

    def _autocast_factory(self, recipe: Recipe, exact: bool = False) -> Callable[[], torch.autocast]:
        enabled = recipe.bf16 and self._bf16_ok and not exact
        dev = self.device.type
        return lambda: torch.autocast(dev, dtype=torch.bfloat16, enabled=enabled)

    def _objective(
        self,
        recipe: Recipe,
        content_img: Image.Image,
        style_img: Image.Image,
        size: tuple[int, int],
        strength: float,
        tv_weight: float,
        keep_colors: bool,
        exact: bool = False,
        style2_img: Image.Image | None = None,
        mix: float = 0.5,
        color_method: str = "luminance",
    ) -> tuple[Objective, torch.Tensor]:
        """Targets for one level of ``size`` (w, h): the content resized, the style(s) scaled to the level.

        Under ``keep_colors`` the style is luminance-matched to a grey content (``color_method``
        "luminance") or recoloured to the content's colour statistics ("histogram"). A second style is
        treated like the first; the objective mixes their statistics with share ``mix`` for the second.
        """
        luminance_only = keep_colors and color_method == "luminance"
        recolour = keep_colors and color_method == "histogram"
        content_lvl = imaging.resize(content_img, size)
        content_t = imaging.to_tensor(content_lvl, self.device)
        if luminance_only:
            content_t = imaging.to_tensor(imaging.luminance(content_lvl), self.device)

        def style_tensor(img: Image.Image) -> torch.Tensor:
            lvl = imaging.resize(img, imaging.style_size(img, max(size)))
            if luminance_only:
                return imaging.match_luminance(imaging.to_tensor(imaging.luminance(lvl), self.device), content_t)
            if recolour:
                return imaging.match_colors(imaging.to_tensor(lvl, self.device), content_t)
            return imaging.to_tensor(lvl, self.device)

        style_t = style_tensor(style_img)
        style2_t = style_tensor(style2_img) if style2_img is not None else None
        objective = Objective(
            self.net,
            recipe,
            content_t,
            style_t,
            strength,
            tv_weight,
            self._autocast_factory(recipe, exact),
            recipe.channels_last and not exact,
            self.tile_px if recipe.tiled else None,
            # The content target is the largest buffer of a level; when memory is the point (tiled) it is
            # kept in bfloat16 (its rounding error is far below the content loss).
            torch.bfloat16 if recipe.tiled and not exact else torch.float32,
            style2=style2_t,
            mix=mix,
        )
        return objective, content_t

    # -- public --------------------------------------------------------------------------------------------

    def evaluate(
        self,
        image: Image.Image,
        content: Image.Image,
        style: Image.Image,
        params: StyleParams = DEFAULT_PARAMS,
        *,
        style2: Image.Image | None = None,
    ) -> Losses:
        """The objective of ``params`` (strength included) for ``image`` at its own size, in fp32.

        The content is resized to the image and the style scaled as during :meth:`stylize`; with
        a luminance-only ``keep_colors`` it is the luminance objective that run minimised, on the image's
        luminance (with ``color_method`` "histogram", the colour objective against the recoloured style). The
        benchmark evaluates outputs with ``StyleParams(preset="seed")`` at full, 1/2 and 1/4 size.
        ``style2``: the mixed objective of :meth:`stylize` (share ``params.mix``).
        """
        image, content, style = (im.convert("RGB") for im in (image, content, style))
        objective, _ = self._objective(
            params.recipe,
            content,
            style,
            image.size,
            params.strength,
            params.tv_weight,
            params.keep_colors,
            exact=True,
            style2_img=style2.convert("RGB") if style2 is not None else None,
            mix=params.mix,
            color_method=params.color_method,
        )
        x = imaging.to_tensor(imaging.luminance(image) if params.luminance_only else image, self.device)
        return objective.value(x)

    def stylize(
        self,
        content: Image.Image,
        style: Image.Image,
        params: StyleParams = DEFAULT_PARAMS,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        style2: Image.Image | None = None,
        init: Image.Image | None = None,
    ) -> Image.Image:
        """Render ``content`` in the style of ``style``; returns an RGB image of :func:`output_size`.

        :param on_progress: called once per objective evaluation with a :class:`Progress`.
        :param cancel: when set, :class:`Cancelled` is raised within one evaluation.
        :param style2: a second style, mixed in ONE objective whose style targets are, per layer,
            ``(1 - params.mix)·Gram(style) + params.mix·Gram(style2)`` (not two runs blended). ``mix`` 0
            paints exactly as ``style`` alone, 1 exactly as ``style2`` alone.
        :param init: the start image at the coarsest level instead of the content (e.g. the draft network's
            picture, :mod:`.draft`), resized to that level; the content stays the content target.
        """
        recipe = params.recipe
        content, style = content.convert("RGB"), style.convert("RGB")
        if style2 is not None:
            style2 = style2.convert("RGB")
        levels = imaging.levels(output_size(content.size, params.size), recipe.min_side)
        plan = [recipe.coarse_evals] + [
            next(n for bound, n in recipe.refine_evals if max(size) <= bound) for size in levels[1:]
        ]
        # Work per evaluation is about proportional to the pixel count; used for fraction and ETA.
        work = [n * w * h for n, (w, h) in zip(plan, levels)]
        caller_threads = torch.get_num_threads()
        try:
            x = self._levels(content, style, params, levels, plan, work, on_progress, cancel, style2, init)
        finally:
            use_threads(caller_threads)  # the caller's thread gets its own count back
        return imaging.render(x, content, params.luminance_only)

    def _levels(
        self,
        content: Image.Image,
        style: Image.Image,
        params: StyleParams,
        levels: list[tuple[int, int]],
        plan: list[int],
        work: list[int],
        on_progress: Callable[[Progress], None] | None,
        cancel: threading.Event | None,
        style2: Image.Image | None = None,
        init: Image.Image | None = None,
    ) -> torch.Tensor:
        """The pyramid, coarse to fine; returns the finest level's image tensor."""
        recipe = params.recipe
        run = _Run(total_work=float(sum(work)), total_evals=sum(plan), t0=time.perf_counter())
        x: torch.Tensor | None = None
        coarse_content: torch.Tensor | None = None  # the previous level's content (recipe.detail)
        threads = self.threads  # the count carried into the next level (its warm-up, or all of it)
        margin = 1.0  # how clearly the last level's choice won

        for level, ((w, h), n_evals) in enumerate(zip(levels, plan)):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if self.low_memory:
                platform.malloc_for(strips.mmap_threshold((w, h) if recipe.tiled else None, self.tile_px))
            chooser = LevelThreads(f"{w}x{h}", self.threads, n_evals, threads, self.adaptive, margin)
            use_threads(chooser.current)  # the targets are built on the count the level starts with
            objective, content_t = self._objective(
                recipe,
                content,
                style,
                (w, h),
                params.strength,
                params.tv_weight,
                params.keep_colors,
                style2_img=style2,
                mix=params.mix,
                color_method=params.color_method,
            )
            x = self._level_start(x, content_t, coarse_content, init, (w, h), params)
            coarse_content = content_t if recipe.detail else None
            del content_t
            level_start = run.done_work
            level_end = level_start + work[level]
            evaluate = self._evaluator(
                objective, chooser, run, level_end, max(w, h), cancel, on_progress, content, params
            )
            x = minimize(evaluate, x, n_evals, history_for(x, recipe.history))
            run.done_work = level_end
            threads, margin = chooser.current, chooser.margin
            del objective, evaluate  # the next level's targets are built without this level's alive

        assert x is not None
        return x

    def _level_start(
        self,
        x: torch.Tensor | None,
        content_t: torch.Tensor,
        coarse_content: torch.Tensor | None,
        init: Image.Image | None,
        size: tuple[int, int],
        params: StyleParams,
    ) -> torch.Tensor:
        """Where a level's optimisation starts: the content (or ``init``) at the coarsest level, else the
        coarser result upsampled, plus the content's detail band when the recipe asks for it."""
        w, h = size
        if x is None:
            x = content_t.clone() if init is None else self._start_image(init, (w, h), params)
            return _seeded_variation(x, params.seed) if params.seed else x
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
        if params.recipe.detail and coarse_content is not None:
            # The band of detail this level adds to the content (a Laplacian-pyramid level): the upsampled
            # result lacks it, so without it a level spends its first evaluations re-sharpening edges the
            # content already has.
            x += content_t - F.interpolate(coarse_content, size=(h, w), mode="bicubic", align_corners=False)
        return x.clamp_(0, 1)

    def _evaluator(
        self,
        objective: Objective,
        chooser: LevelThreads,
        run: _Run,
        level_end: float,
        scale: int,
        cancel: threading.Event | None,
        on_progress: Callable[[Progress], None] | None,
        content: Image.Image,
        params: StyleParams,
    ) -> Callable[[torch.Tensor], tuple[float, torch.Tensor]]:
        """One level's ``evaluate(x) -> (loss, grad)``: counts the step, reports progress, honours cancel.

        Built per level so that it sees this level's objective and thread chooser, never the next one's.
        """

        def evaluate(xk: torch.Tensor) -> tuple[float, torch.Tensor]:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            chooser.before()
            t_eval, cpu0 = time.perf_counter(), platform.cpu_times() if self.adaptive else None
            losses, grad = objective.value_and_grad(xk)
            idle = platform.idle_cores(cpu0, platform.cpu_times()) if cpu0 is not None else None
            chooser.after(time.perf_counter() - t_eval, idle)
            run.step += 1
            run.done_work = min(run.done_work + xk.shape[-1] * xk.shape[-2], level_end)
            if on_progress is not None:
                frac = run.done_work / run.total_work
                snapshot = xk.detach()
                on_progress(
                    Progress(
                        fraction=frac,
                        eta=(time.perf_counter() - run.t0) / frac * (1 - frac),
                        step=run.step,
                        total=run.total_evals,
                        scale=scale,
                        loss=losses.total,
                        render=lambda: imaging.render(snapshot, content, params.luminance_only),
                    )
                )
            return losses.total, grad

        return evaluate


@dataclass
class _Run:
    """One job's progress across its levels: the work done (pixels × evaluations) and the steps taken."""

    total_work: float
    total_evals: int
    t0: float
    done_work: float = 0.0
    step: int = 0


_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def stylize(
    content: Image.Image,
    style: Image.Image,
    params: StyleParams = DEFAULT_PARAMS,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    weights: str | os.PathLike[str] = DEFAULT_WEIGHTS,
    device: str = "auto",
) -> Image.Image:
    """:meth:`Engine.stylize` on an engine cached per (weights file, device), loaded on first use."""
    key = (str(Path(weights).resolve()), str(platform.resolve_device(device)))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = Engine(weights, device)
    return engine.stylize(content, style, params, on_progress, cancel)


#: Std of the noise a non-zero seed adds to the coarsest start: enough to move the strokes, not the picture.
SEED_NOISE = 0.1


def _seeded_variation(x: torch.Tensor, seed: int) -> torch.Tensor:
    """The start image plus Gaussian noise from a local generator (same seed, same picture, any thread)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
    return x.add(noise, alpha=SEED_NOISE).clamp_(0, 1)
