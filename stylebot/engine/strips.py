"""Strip tiling: large levels are evaluated exactly, stage by stage, in horizontal strips (bounded memory).

One fp32 forward+backward keeps ~1.2 KB of activations and gradients per pixel, so a 512² level cannot be
differentiated in one piece within the memory budget (figures: DESIGN.md, ``bench/strips.py``). The losses
allow an exact split: the Gram matrices are sums over positions, and once the Grams are known the gradient
of each position's features is local, dL/dF = F·(dL/dG + dL/dGᵀ)/N. So a large level is evaluated stage by
stage (``VGGFeatures.STAGES``):

1. a no-grad pass (:func:`scan`) runs each stage over horizontal strips, sums the five Grams (and the
   content error), and keeps only the two pooled stage outputs;
2. a backward pass (:func:`value_and_grad`) runs the stages in reverse. Each re-computes its strips with
   autograd and back-propagates dL/dF for its own feature maps plus the gradient arriving from the next
   stage into its pooled output, which yields the gradient for its input, and so on down to the image.

Within a stage every map has the input's resolution and two 3x3 convs see only 2 rows either side, so a
strip needs a halo of just ``HALO`` = 2 rows (even, so the 2x2 pooling lines up). The first version cut the
whole network into image strips, whose halo had to cover conv_5's 10 px radius (16 rows) and re-computed
half the rows at 512²; stage by stage the overhead is the one extra forward, and strip size hardly
matters, so strips can be small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch

from .losses import ContentLoss, StyleLoss, TVLoss, flat
from .network import VGGFeatures
from .params import Losses

__all__ = [
    "HALO",
    "MIN_ROWS",
    "MMAP_ABOVE_PX",
    "SCAN_FACTOR",
    "TILE_ABOVE_PX",
    "TILE_PX",
    "Scan",
    "Strip",
    "is_tiled",
    "mmap_threshold",
    "scan",
    "stage_strips",
    "strip_plan",
    "strip_rows",
    "value_and_grad",
]

#: Rows of halo either side of a strip's own rows (two 3x3 convs per stage; even, for the 2x2 pooling).
HALO = 2
#: Strip budget on CPU, in pixels of the stage input (rows x width, halo included) at stage 0; later
#: stages get the same number of rows (their maps have 2x the channels at 1/2 the width per stage).
TILE_PX = 8 * 1024
#: Levels up to this many pixels run in one piece: the 256 px level of a 512 px job is faster whole than in
#: strips, and its peak (with glibc's 1 MB mmap threshold from MMAP_ABOVE_PX) stays below the 512 px level's.
TILE_ABOVE_PX = 300 * 300
#: Untiled levels above this many pixels get glibc's 1 MB mmap threshold (see ``platform.malloc_for``): the
#: 256² level of a 512 px job does; a 200 px job's single 200² level keeps the heap (faster, a little more
#: memory; ``python model.py ... --size 200``, alternating).
MMAP_ABOVE_PX = 40_000
#: The no-grad pass keeps only two feature maps alive at a time, so its strips can be this much larger.
SCAN_FACTOR = 2
#: Strips have at least this many rows, halo included: fewer rows at 1024 px wide doubled the
#: convolution work (the halo rows outnumber the own ones).
MIN_ROWS = 16

#: (r0, r1, c0, c1): rows [r0, r1) are the strip's own, [c0, c1) are computed (halo included).
Strip = tuple[int, int, int, int]
#: ``stage(s, x, whole)`` of an objective: stage ``s`` on ``x`` (a strip unless ``whole``), in its dtype/layout.
StageFn = Callable[[int, torch.Tensor, bool], tuple[list[torch.Tensor], torch.Tensor]]


def is_tiled(w: int, h: int, tile_px: int | None) -> bool:
    """Whether a level of w x h pixels is evaluated in strips (``tile_px`` None: never)."""
    return bool(tile_px) and w * h > TILE_ABOVE_PX and min(w, h) >= 4


def mmap_threshold(size: tuple[int, int] | None, tile_px: int | None) -> int:
    """glibc's mmap threshold, in bytes, for a level of ``size`` (w, h); None: not tuned, as a small level."""
    if size is None:
        return 32 << 20
    w, h = size
    if is_tiled(w, h, tile_px):
        assert tile_px
        # Just above one strip's feature map (64 channels x its rows x w in fp32 at stage 0, the same
        # bytes at the later stages): strip maps are reused from the heap, larger blocks are mmap-served.
        return strip_rows(tile_px, w) * w * 64 * 4 * 5 // 4
    return 1 << 20 if w * h > MMAP_ABOVE_PX else 32 << 20


def strip_rows(tile_px: int, image_w: int) -> int:
    """Rows per strip (halo included) for a level ``image_w`` pixels wide; every stage gets as many rows
    of its own input (half the width, twice the channels: the same bytes)."""
    return max(MIN_ROWS, tile_px // image_w)


def strip_plan(h: int, rows: int) -> list[Strip]:
    """The strips over ``h`` rows, ``rows`` each (halo included).

    Own rows start at even rows, so a strip's pooled output rows are exactly its own rows halved.
    """
    own = max(2, (rows - 2 * HALO) // 2 * 2)
    if own >= h:
        return [(0, h, 0, h)]
    return [(r0, min(h, r0 + own), max(0, r0 - HALO), min(h, r0 + own + HALO)) for r0 in range(0, h, own)]


def stage_strips(tile_px: int, inp: torch.Tensor, image_w: int, factor: int = 1) -> list[Strip]:
    """Strips over the rows of a stage's input ``inp``, for a tiled level ``image_w`` pixels wide."""
    return strip_plan(inp.shape[-2], strip_rows(tile_px * factor, image_w))


def _own(f: torch.Tensor, strip: Strip, h: int, stride: int = 1) -> torch.Tensor:
    """The rows of ``f`` (computed on rows [c0, c1) of an h-row input, at 1/stride of its resolution)
    that belong to the strip; the last strip also takes the odd row a pooling leaves over."""
    r0, r1, c0, _ = strip
    return f[:, :, (r0 - c0) // stride : (None if r1 == h else (r1 - c0) // stride)]


def _mm_into(a: torch.Tensor, b: torch.Tensor, dst: torch.Tensor) -> None:
    """dst (1, c, h, w) <- a @ b laid out as by :func:`flat`; written in place when dst's layout allows."""
    dst_flat = flat(dst)
    if dst_flat.dtype == a.dtype and dst_flat.is_contiguous() and dst_flat.data_ptr() == dst.data_ptr():
        torch.mm(a, b, out=dst_flat)
    else:
        _, c, h, w = dst.shape
        dst.copy_((a @ b).view(1, h, w, c).permute(0, 3, 1, 2))


@dataclass
class Scan:
    """What :func:`scan` found: Grams FᵀF/N (fp32), the content layer's map, each map's N = c·h·w, and the
    pooled stage outputs (the inputs of stages 1 and 2) when asked."""

    grams: list[torch.Tensor]
    content: torch.Tensor | None
    counts: list[int]
    outputs: list[torch.Tensor]


@torch.no_grad()
def scan(
    stage: StageFn,
    x: torch.Tensor,
    tile_px: int | None,
    content_layer: int,
    channels_last: bool,
    keep_content: bool,
    content_dtype: torch.dtype = torch.float32,
    keep_outputs: bool = False,
    content_only: bool = False,
) -> Scan:
    """No-grad pass, stage by stage in strips when the level is tiled (one whole "strip" otherwise).

    ``content_only``: just the content layer's map (a level's content target): no Grams, and the stages
    after the content layer's are not run (an empty ``grams`` list comes back).
    """
    image_w = x.shape[-1]
    tiled = is_tiled(image_w, x.shape[-2], tile_px)
    sums: list[torch.Tensor | int] = [0] * 5
    counts = [0] * 5
    content = None
    outputs: list[torch.Tensor] = []
    inp = x
    for s, layers in enumerate(VGGFeatures.STAGES):
        h = inp.shape[-2]
        # the last stage run: the network's, or the content layer's when only the content map is wanted
        last = s == len(VGGFeatures.STAGES) - 1 or (content_only and content_layer in layers)
        nxt: torch.Tensor | None = None
        strips = stage_strips(tile_px, inp, image_w, SCAN_FACTOR) if tiled and tile_px else [(0, h, 0, h)]
        for strip in strips:
            feats, out = stage(s, inp[:, :, strip[2] : strip[3]], not tiled)
            for i, f in zip(layers, feats):
                own = _own(f, strip, h)
                if not content_only:
                    f_flat = flat(own).float()
                    sums[i] = sums[i] + f_flat.t() @ f_flat
                    counts[i] += f_flat.numel()
                if keep_content and i == content_layer:
                    content = _place_content(content, own, f, strip, h, len(strips) == 1, content_dtype)
            del feats
            if not last:
                nxt = _place_output(nxt, out, strip, h, len(strips) == 1, channels_last)
            del out
        if last:
            break
        assert nxt is not None
        if keep_outputs:
            outputs.append(nxt)
        inp = nxt
    if content_only:
        return Scan([], content, counts, outputs)
    grams = [cast(torch.Tensor, s_) / n for s_, n in zip(sums, counts)]  # FᵀF / (c·h·w), as the style loss
    return Scan(grams, content, counts, outputs)


def _place_content(
    content: torch.Tensor | None,
    own: torch.Tensor,
    f: torch.Tensor,
    strip: Strip,
    h: int,
    whole: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The content map with one strip's own rows written in (allocated at the first strip)."""
    if whole:  # the whole map (a tiny image's is padded: not h rows)
        return own.to(dtype)
    if content is None:
        content = f.new_empty((1, f.shape[1], h, f.shape[3]), dtype=dtype)
    content[:, :, strip[0] : strip[0] + own.shape[2]] = own
    return content


def _place_output(
    nxt: torch.Tensor | None,
    out: torch.Tensor,
    strip: Strip,
    h: int,
    whole: bool,
    channels_last: bool,
) -> torch.Tensor:
    """The next stage's input with one strip's pooled rows written in (allocated at the first strip)."""
    if whole:
        return out
    if nxt is None:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        nxt = torch.empty(
            (1, out.shape[1], h // 2, out.shape[3]), dtype=out.dtype, device=out.device, memory_format=layout
        )
    own = _own(out, strip, h, 2)
    nxt[:, :, strip[0] // 2 : strip[0] // 2 + own.shape[2]] = own
    return nxt


def value_and_grad(
    stage: StageFn,
    x: torch.Tensor,
    tile_px: int,
    channels_last: bool,
    style_losses: Sequence[StyleLoss],
    content_loss: ContentLoss,
    content_layer: int,
    tv_loss: TVLoss,
) -> tuple[Losses, torch.Tensor]:
    """The objective and its gradient for a tiled level: :func:`scan`, then the stages in reverse."""
    sc = scan(stage, x, tile_px, content_layer, channels_last, keep_content=False, keep_outputs=True)
    style = 0.0
    coeffs = []  # dL/dF = flat(F) @ coeff for each layer
    for g, loss, f_count in zip(sc.grams, style_losses, sc.counts):
        value, coeff = loss.value_and_coeff(g, f_count)
        style += value
        coeffs.append(coeff)
    inputs = [x, *sc.outputs]
    del sc
    content = [0.0]
    d_out: torch.Tensor | None = None
    for s in reversed(range(len(VGGFeatures.STAGES))):
        inp = inputs.pop()
        d_out = _stage_grad(
            stage, s, inp, d_out, coeffs, content_loss, content_layer, content, stage_strips(tile_px, inp, x.shape[-1])
        )
        del inp
    assert d_out is not None
    grad = d_out.contiguous()
    content_value = content_loss.from_squared_error(content[0])
    tv = 0.0
    if tv_loss.weight:
        xk = x.detach().requires_grad_(True)
        tv_t = tv_loss(xk)
        tv_t.backward()
        assert xk.grad is not None
        grad += xk.grad
        tv = float(tv_t.detach())
    return Losses(style, content_value, tv, style + content_value + tv), grad


def _stage_grad(
    stage: StageFn,
    s: int,
    inp: torch.Tensor,
    d_out: torch.Tensor | None,
    coeffs: list[torch.Tensor],
    content_loss: ContentLoss,
    content_layer: int,
    content: list[float],
    strips: list[Strip],
) -> torch.Tensor:
    """Gradient of the loss with respect to stage ``s``'s input, strip by strip.

    Each strip back-propagates dL/dF = F @ coeff into its own rows of the stage's feature maps (plus
    the content error at the content layer, whose squared sum is added to ``content[0]``) and
    ``d_out`` (the gradient of the next stage's input) into its own rows of the pooled output.
    """
    h = inp.shape[-2]
    target, c_scale = content_loss.target, content_loss.grad_scale
    d_inp = torch.zeros_like(inp)
    for strip in strips:
        xc = inp[:, :, strip[2] : strip[3]].detach().requires_grad_(True)
        feats, out = stage(s, xc, False)
        # Gradients for the whole computed maps, zero in the halo rows; each own part is written in
        # place (the matrix product straight into it when the layout allows: no copies).
        grads = []
        for i, f in zip(VGGFeatures.STAGES[s], feats):
            own = _own(f, strip, h)
            g = torch.zeros_like(f, dtype=torch.float32)
            g_own = _own(g, strip, h)
            _mm_into(flat(own.detach()).float(), coeffs[i], g_own)
            if i == content_layer:
                err = own.detach().float() - target[:, :, strip[0] : strip[0] + own.shape[2]].float()
                content[0] += float(err.square().sum())
                g_own.add_(err, alpha=c_scale)
                del err
            grads.append(g.to(f.dtype))
        tensors = list(feats)
        if d_out is not None:
            g = torch.zeros_like(out)
            g_own = _own(g, strip, h, 2)
            g_own.copy_(d_out[:, :, strip[0] // 2 : strip[0] // 2 + g_own.shape[2]])
            tensors.append(out)
            grads.append(g)
        del feats, out, own, g, g_own
        torch.autograd.backward(tensors, grads)
        del tensors, grads
        assert xc.grad is not None
        d_inp[:, :, strip[2] : strip[3]] += xc.grad
        del xc
    return d_inp
