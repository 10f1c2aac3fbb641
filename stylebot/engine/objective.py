"""The objective of one pyramid level: Gatys et al.'s style + content (+ TV) loss on the VGG slice.

The whole-image path reads like the PyTorch tutorial: features of the image, a style loss per layer, a
content loss at one layer, one autograd graph. Large levels on CPU take the strip path instead
(:mod:`.strips`), which computes exactly the same value and gradient in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import strips
from .losses import ContentLoss, StyleLoss, TVLoss
from .network import VGGFeatures
from .params import Losses, Recipe

__all__ = ["Objective"]


class Objective:
    """The loss modules of one level: targets computed once (no autograd), then evaluated per step.

    ``tile_px``: levels with more pixels than :data:`.strips.TILE_ABOVE_PX` are evaluated stage by stage in
    strips of this budget; None = always in one piece.
    ``target_dtype``: storage of the content target (bfloat16 halves the largest per-level buffer).
    """

    def __init__(
        self,
        net: VGGFeatures,
        recipe: Recipe,
        content: torch.Tensor,
        style: torch.Tensor,
        strength: float,
        tv_weight: float,
        autocast: Callable[[], torch.autocast],
        channels_last: bool,
        tile_px: int | None = None,
        target_dtype: torch.dtype = torch.float32,
        style2: torch.Tensor | None = None,
        mix: float = 0.5,
    ) -> None:
        self.net, self.recipe, self.autocast, self.channels_last = net, recipe, autocast, channels_last
        self.tile_px = tile_px
        style_grams = self._style_grams(style, style2, mix)
        self.style_losses = [
            StyleLoss(g, recipe.style_weight * strength * lw) for g, lw in zip(style_grams, recipe.layer_weights)
        ]
        c_feat = self._scan(content, keep_content=True, content_dtype=target_dtype, content_only=True).content
        assert c_feat is not None
        self.content_loss = ContentLoss(c_feat, recipe.content_weight)
        self.tv_loss = TVLoss(tv_weight * recipe.tv_scale)

    def _style_grams(self, style: torch.Tensor, style2: torch.Tensor | None, mix: float) -> list[torch.Tensor]:
        """The style targets: one style's Grams, or per layer (1 - mix)·G1 + mix·G2 of two styles.

        Mixing the statistics gives ONE objective whose optimum has both textures (two runs blended would
        give a double exposure). mix 0 or 1 uses that style's Grams alone, bit for bit. Both the whole-image
        and the strip path read these targets from the style losses, so they agree for a mix too.
        """
        if style2 is None or mix <= 0.0:
            return self._scan(style, keep_content=False).grams
        if mix >= 1.0:
            return self._scan(style2, keep_content=False).grams
        g1 = self._scan(style, keep_content=False).grams
        g2 = self._scan(style2, keep_content=False).grams
        return [a.mul(1.0 - mix).add_(b, alpha=mix) for a, b in zip(g1, g2)]

    # -- the network, as this level runs it ---------------------------------------------------------------

    def _stage(self, s: int, x: torch.Tensor, whole: bool = True) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stage ``s`` on ``x``; ``whole``: x is the whole stage input, not a strip (tiny images are padded)."""
        if s == 0:
            if x.shape[1] == 1:  # luminance-only transfer: a grey image
                x = x.expand(-1, 3, -1, -1)
            h, w = x.shape[-2:]
            # The two 2x2 poolings need 4 px: repeat the edge (the output keeps its size). Strips are
            # never padded: their short edge rows are halo or pooled away exactly as in the whole image.
            if whole and (h < 4 or w < 4):
                x = F.pad(x, (0, max(0, 4 - w), 0, max(0, 4 - h)), mode="replicate")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.net.stage(s, x, self.recipe.taps, self.recipe.pool)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        for s in range(len(VGGFeatures.STAGES)):
            f, x = self._stage(s, x)
            feats += f
        return feats

    def _tiled(self, x: torch.Tensor) -> bool:
        h, w = x.shape[-2:]
        return strips.is_tiled(w, h, self.tile_px)

    def _strips(self, s: int, inp: torch.Tensor, image_w: int) -> list[strips.Strip]:
        """Strips over the rows of stage ``s``'s input, for a tiled level (see :meth:`_tiled`)."""
        assert self.tile_px
        return strips.stage_strips(self.tile_px, inp, image_w)

    def _scan(
        self,
        x: torch.Tensor,
        keep_content: bool,
        content_dtype: torch.dtype = torch.float32,
        content_only: bool = False,
    ) -> strips.Scan:
        """Grams (and the content map) of ``x`` without autograd, in strips when the level is tiled;
        ``content_only``: the content map alone (no Grams, no stage past the content layer's)."""
        return strips.scan(
            self._stage,
            x,
            self.tile_px,
            self.recipe.content_layer,
            self.channels_last,
            keep_content,
            content_dtype,
            content_only=content_only,
        )

    # -- evaluation ---------------------------------------------------------------------------------------

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, Losses]:
        """The objective as one autograd graph (whole image): what the strip path must equal."""
        feats = self._features(x)
        style = sum(loss(f) for loss, f in zip(self.style_losses, feats))
        content = self.content_loss(feats[self.recipe.content_layer])
        del feats
        tv = self.tv_loss(x) if self.tv_loss.weight else torch.zeros((), device=x.device)
        total = style + content + tv
        return total, Losses(*(float(t.detach()) for t in (style, content, tv, total)))

    def value(self, x: torch.Tensor) -> Losses:
        """The objective without autograd, in strips when the level is large: cheap in memory at any size."""
        sc = self._scan(x, keep_content=True)
        style = sum(float(loss(g, gram=True)) for loss, g in zip(self.style_losses, sc.grams))
        content = float(self.content_loss(sc.content))
        tv = float(self.tv_loss(x)) if self.tv_loss.weight else 0.0
        return Losses(style, content, tv, style + content + tv)

    def value_and_grad(self, x: torch.Tensor) -> tuple[Losses, torch.Tensor]:
        """Loss and its gradient with respect to x (same layout as x), whole or stage by stage in strips."""
        if not self._tiled(x):
            xk = x.detach().requires_grad_(True)
            loss, losses = self(xk)
            loss.backward()
            assert xk.grad is not None
            # The gradient comes back in the network's channels-last layout; the optimiser works on flat
            # vectors, which needs the standard layout (3 channels: the copy costs nothing).
            return losses, xk.grad.contiguous()
        assert self.tile_px
        return strips.value_and_grad(
            self._stage,
            x.detach(),
            self.tile_px,
            self.channels_last,
            self.style_losses,
            self.content_loss,
            self.recipe.content_layer,
            self.tv_loss,
        )
