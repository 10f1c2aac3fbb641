"""PIL <-> tensor conversions and the image-side steps of a job: resizing, the pyramid's level sizes and
luminance-only transfer (Gatys et al. 2017, colour preservation)."""

from __future__ import annotations

import torch
from PIL import Image

__all__ = [
    "levels",
    "luminance",
    "match_colors",
    "match_luminance",
    "render",
    "resize",
    "style_size",
    "to_image",
    "to_tensor",
    "with_chroma",
]


def to_tensor(img: Image.Image, device: torch.device) -> torch.Tensor:
    """PIL RGB or L -> (1, C, H, W) float32 in 0..1."""
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    c = len(img.getbands())
    return t.view(img.height, img.width, c).permute(2, 0, 1).unsqueeze(0).to(device, torch.float32).div_(255)


def to_image(x: torch.Tensor) -> Image.Image:
    """(1, C, H, W) in 0..1 -> PIL RGB (C=3) or L (C=1)."""
    arr = x.detach()[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu()
    mode = "RGB" if arr.shape[2] == 3 else "L"
    return Image.frombytes(mode, (arr.shape[1], arr.shape[0]), arr.numpy().tobytes())


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def style_size(style: Image.Image, long_side: int) -> tuple[int, int]:
    """The style is scaled so that its long side equals the output level's long side, aspect kept."""
    w, h = style.size
    s = long_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def luminance(img: Image.Image) -> Image.Image:
    return img.convert("YCbCr").getchannel(0)


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and std, so luminance-only transfer
    does not carry the style's brightness over."""
    s_mean, s_std = style_y.mean(), style_y.std().clamp_min(1e-4)
    c_mean, c_std = content_y.mean(), content_y.std()
    return ((style_y - s_mean) / s_std * c_std + c_mean).clamp(0, 1)


def match_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's RGB colours moved onto the content's mean and covariance (Gatys et al. 2017's colour
    histogram matching, the symmetric "image analogies" transform A = Σc^½ Σs^-½): the style keeps its
    strokes and contrast pattern, but its palette becomes the content's, so the result has no colour cast."""
    s = style[0].reshape(3, -1).double()
    c = content[0].reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64, device=s.device) * 1e-5  # a flat (grey, one-colour) image stays finite
    cov_s = torch.cov(s, correction=0) + eye  # population covariance: a one-pixel image stays finite
    cov_c = torch.cov(c, correction=0) + eye

    def sqrtm(m: torch.Tensor, power: float) -> torch.Tensor:
        vals, vecs = torch.linalg.eigh(m)
        return vecs @ torch.diag(vals.clamp_min(1e-8) ** power) @ vecs.T

    a = sqrtm(cov_c, 0.5) @ sqrtm(cov_s, -0.5)
    out = (a @ (s - mu_s) + mu_c).to(style.dtype).reshape(style.shape)
    return out.clamp_(0, 1)


def with_chroma(y: Image.Image, content: Image.Image) -> Image.Image:
    """Luminance ``y`` + the content's Cb/Cr (resized to ``y``) -> RGB."""
    _, cb, cr = resize(content, y.size).convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def render(x: torch.Tensor, content: Image.Image, luminance_only: bool) -> Image.Image:
    """The image ``x`` as the caller sees it: RGB, with the content's chroma after a luminance-only transfer."""
    img = to_image(x)
    return with_chroma(img, content) if luminance_only else img


def levels(size: tuple[int, int], min_side: int) -> list[tuple[int, int]]:
    """Pyramid sizes from the coarsest to the output size, halving the long side while it stays >= min_side."""
    w, h = size
    out = [size]
    f = 0.5
    while max(w, h) * f >= min_side:
        out.append((max(1, round(w * f)), max(1, round(h * f))))
        f /= 2
    return out[::-1]
