"""stylebot.engine.weights
~~~~~~~~~~~~~~~~~~~~~~~

Load, convert and build the truncated VGG-19 weights the engine needs, without unpickling code.

The engine uses the first five convolutions of VGG-19 (conv1_1, conv1_2, conv2_1, conv2_2, conv3_1).
Their weights live in one file, ``vgg19_cache.pth``, in either of two formats:

* **state dict** (what this module writes): a zip-format ``torch.save`` of a plain ``dict`` with the ten
  keys of :data:`LAYER_SHAPES` (``conv_1.weight``, ``conv_1.bias`` ... ``conv_5.bias``; float32, CPU).
  Loaded with ``torch.load(weights_only=True)``. These names are a contract: keep them stable.
* **legacy pickle** (the shared cache of the original bot): a whole ``nn.Sequential`` pickled by torch 0.4
  in the pre-zip format. ``weights_only=True`` refuses it and a plain ``torch.load`` would run whatever
  the pickle names, so :class:`_LegacyUnpickler` reads it with an allow-list: the handful of classes such a
  file names are mapped to inert stand-ins, tensors are rebuilt from the raw storage bytes, and any other
  global is refused.

Anything else (missing, truncated, foreign) raises :class:`WeightsError` with a message saying what to do.

Command line (the top-level ``weights.py`` is a shim for :func:`main`)::

    python weights.py build vgg19_cache.pth          # download torchvision's VGG-19, keep 5 convs
    python weights.py convert legacy.pth out.pth     # legacy pickle -> state dict
    python weights.py check vgg19_cache.pth          # load, validate, print the content digest
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import pickle
import struct
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import WeightsError

__all__ = [
    "LAYER_SHAPES",
    "LEGACY_SHA256",
    "VGG19_SHA256",
    "VGG19_URL",
    "WeightsError",
    "build_cache",
    "convert",
    "load_state_dict",
    "main",
    "save_state_dict",
    "state_digest",
]

log = logging.getLogger(__name__)

#: Key -> shape of every tensor in the cache, in network order. conv_i is the i-th conv of VGG-19.
LAYER_SHAPES: dict[str, tuple[int, ...]] = {
    "conv_1.weight": (64, 3, 3, 3),
    "conv_1.bias": (64,),
    "conv_2.weight": (64, 64, 3, 3),
    "conv_2.bias": (64,),
    "conv_3.weight": (128, 64, 3, 3),
    "conv_3.bias": (128,),
    "conv_4.weight": (128, 128, 3, 3),
    "conv_4.bias": (128,),
    "conv_5.weight": (256, 128, 3, 3),
    "conv_5.bias": (256,),
}

#: torchvision's official VGG-19 ImageNet weights (``VGG19_Weights.IMAGENET1K_V1``) and the sha256 of that
#: exact file (574,673,361 bytes; its first 8 hex digits are the ``-dcbb9e9d`` in the name).
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_SHA256 = "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44"

#: Index of conv_1..conv_5 in torchvision's ``vgg19().features``.
_TORCHVISION_CONVS = (0, 2, 5, 7, 10)

#: sha256 of the shared legacy cache (the original bot's file).
LEGACY_SHA256 = "747b308c4c68eaa8622800046a2214df3ebe6307a04a23a7ef8309ce68771447"

_HOW_TO_GET = (
    "Get the weights with `python weights.py build vgg19_cache.pth` (downloads torchvision's VGG-19, "
    "~550 MB once, keeps 2 MB), or convert the original bot's file with "
    "`python weights.py convert OLD.pth vgg19_cache.pth`."
)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


# ---------------------------------------------------------------------------------------------------------
# Legacy (torch 0.4, pre-zip) pickle, read with an allow-list
# ---------------------------------------------------------------------------------------------------------
#
# Layout of such a file (torch/serialization.py, ``_legacy_save``): five pickles and raw bytes in a row:
#   magic number, protocol version (1001), sys info dict, the object itself, the list of storage keys,
#   then for each key in that order: int64 element count (little endian) + the elements' bytes.
# Inside the object pickle, tensors refer to storages by a *persistent id*
#   ("storage", storage_type, key, location, numel, view_metadata)
# and each module class by ("module", class, source_file, source_code).


class _Stub:
    """Stand-in for a pickled ``nn.Module``: keeps the instance dict (``_parameters``, ``_modules``...)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _Storage:
    """A storage announced by a persistent id; its bytes are read after the object pickle."""

    def __init__(self, dtype: torch.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: torch.Tensor | None = None  # 1-D tensor, filled in by _read_storages


class _PendingTensor:
    """What ``_rebuild_tensor_v2`` returns: a view that becomes a tensor once its storage is read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("tensor without a storage")
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def materialize(self) -> torch.Tensor:
        assert self.storage.data is not None
        return self.storage.data.as_strided(self.size, self.stride, self.offset).clone()


def _rebuild_tensor_v2(
    storage: _Storage,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    hooks: Any = None,
    *_ignored: Any,
) -> _PendingTensor:
    return _PendingTensor(storage, offset, size, stride)


def _parameter(data: Any, requires_grad: bool = True, *_ignored: Any) -> Any:
    return data  # a Parameter is just its tensor here


def _no_backend(*_args: Any) -> None:
    return None  # torch 0.4 pickled a reference to its THNN backend; nothing to restore


_FLOAT_STORAGES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16}

# (module, name) -> stand-in. Nothing outside this table can be reached from the file.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch.nn.parameter", "Parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): _no_backend,
    **{("torch", name): ("storage", dtype) for name, dtype in _FLOAT_STORAGES.items()},
    **{
        (mod, cls): _Stub
        for mod, cls in [
            ("torch.nn.modules.container", "Sequential"),
            ("torch.nn.modules.conv", "Conv2d"),
            ("torch.nn.modules.activation", "ReLU"),
            ("torch.nn.modules.pooling", "MaxPool2d"),
            ("torch.nn.modules.pooling", "AvgPool2d"),
        ]
    },
}


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickler for the legacy object pickle: allow-listed globals only, storages by persistent id."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage] | None = None) -> None:
        super().__init__(file)
        self.storages = storages if storages is not None else {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a VGG weights class") from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError("bad persistent id")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            return pid[1]  # the (allow-listed) class itself; source checks are irrelevant to a stub
        if kind == "storage" and len(pid) == 6:
            storage_type, key, _location, numel, view = pid[1:]
            if not (isinstance(storage_type, tuple) and storage_type[0] == "storage") or view is not None:
                raise pickle.UnpicklingError("unsupported storage")
            if key not in self.storages:
                self.storages[key] = _Storage(storage_type[1], int(numel))
            return self.storages[key]
        raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")


class _DataOnlyUnpickler(pickle.Unpickler):
    """For the header pickles and the key list: plain data, no globals at all."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_storages(f: BinaryIO, storages: dict[str, _Storage]) -> None:
    keys = _DataOnlyUnpickler(f).load()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise pickle.UnpicklingError("storage list does not match the tensors")
    for key in keys:
        st = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        itemsize = torch.empty((), dtype=st.dtype).element_size()
        raw = f.read(numel * itemsize)
        if numel != st.numel or len(raw) != numel * itemsize:
            raise pickle.UnpicklingError("truncated storage data")
        st.data = torch.frombuffer(bytearray(raw), dtype=st.dtype)


def _load_legacy(f: BinaryIO) -> dict[str, torch.Tensor]:
    header = _DataOnlyUnpickler(f)
    if header.load() != _LEGACY_MAGIC or header.load() != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("not a torch checkpoint")
    sys_info = _DataOnlyUnpickler(f).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("unsupported byte order")
    unpickler = _LegacyUnpickler(f)
    root = unpickler.load()
    _read_storages(f, unpickler.storages)
    modules = getattr(root, "_modules", None)
    if not isinstance(modules, dict):
        raise pickle.UnpicklingError("not a pickled nn.Sequential")
    state: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for pname, value in (getattr(module, "_parameters", None) or {}).items():
            if isinstance(value, _PendingTensor):
                state[f"{name}.{pname}"] = value.materialize()
    return state


# ---------------------------------------------------------------------------------------------------------
# Public loading API
# ---------------------------------------------------------------------------------------------------------


def _validate(state: Any, path: Path) -> dict[str, torch.Tensor]:
    """Keep the ten expected tensors (float32, contiguous) or raise WeightsError naming the problem."""
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a VGG-19 state dict. {_HOW_TO_GET}")
    out: dict[str, torch.Tensor] = {}
    for key, shape in LAYER_SHAPES.items():
        value = state.get(key)
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path} has no tensor {key!r}: not a VGG-19 cache. {_HOW_TO_GET}")
        if tuple(value.shape) != shape:
            raise WeightsError(
                f"{path}: {key} has shape {tuple(value.shape)}, expected {shape}: not a VGG-19 cache. {_HOW_TO_GET}"
            )
        value = value.detach().to("cpu", torch.float32).contiguous()
        if not torch.isfinite(value).all():
            raise WeightsError(f"{path}: {key} holds NaN or inf values: the file is corrupt. {_HOW_TO_GET}")
        out[key] = value
    return out


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a weights file (state dict or legacy pickle) into ``{key: float32 CPU tensor}``.

    :param path: the ``vgg19_cache.pth`` file, in either format described in the module docstring.
    :return: exactly the keys of :data:`LAYER_SHAPES`, with those shapes.
    :raises WeightsError: missing, unreadable, corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found. {_HOW_TO_GET}")
    try:
        if zipfile.is_zipfile(path):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            with open(path, "rb") as f:
                state = _load_legacy(f)
    except WeightsError:
        raise
    except Exception as exc:  # any parse failure means "not a file we can trust"; keep the cause chained
        raise WeightsError(f"cannot read weights file {path} ({type(exc).__name__}: {exc}). {_HOW_TO_GET}") from exc
    return _validate(state, path)


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over key names, shapes and float32 bytes in :data:`LAYER_SHAPES` order.

    Independent of the file format and of torch's zip layout, so a converted legacy file and a freshly
    built cache can be compared.
    """
    h = hashlib.sha256()
    for key in LAYER_SHAPES:
        t = state[key].to(torch.float32).contiguous()
        h.update(f"{key}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_state_dict(state: dict[str, torch.Tensor], out_path: str | os.PathLike[str]) -> Path:
    """Write a validated state dict atomically (temp file + rename), so a crash never leaves half a file."""
    out_path = Path(out_path)
    state = _validate(state, out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def convert(legacy_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Convert any accepted weights file (typically the legacy pickle) to a plain state dict file."""
    return save_state_dict(load_state_dict(legacy_path), out_path)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torchvision_vgg19() -> tuple[str, tuple[int, ...]]:
    """The official VGG-19 weights' URL and the ``features`` indices of its first five convs, read from
    torchvision's own definition (imported here only: the bot never imports torchvision at run time)."""
    from torchvision.models import VGG19_Weights
    from torchvision.models.vgg import cfgs

    convs, index = [], 0
    for layer in cfgs["E"]:  # VGG-19: a number is a conv (then its ReLU), "M" a max-pool
        if layer == "M":
            index += 1
        else:
            convs.append(index)
            index += 2
    return VGG19_Weights.IMAGENET1K_V1.url, tuple(convs[: len(_TORCHVISION_CONVS)])


def build_cache(out_path: str | os.PathLike[str], *, download_dir: str | os.PathLike[str] | None = None) -> Path:
    """Build the cache from torchvision's official VGG-19 ImageNet weights; return the written path.

    Downloads :data:`VGG19_URL` (~550 MB, once; kept in ``download_dir``, default torch hub's cache),
    checks the whole file's sha256 against :data:`VGG19_SHA256`, keeps conv1_1..conv3_1 as
    ``conv_1``..``conv_5`` and writes a ~2 MB state dict. Used by the Heroku build step.

    :raises WeightsError: offline, download failed, or checksum mismatch.
    """
    out_path = Path(out_path)
    hub_dir = Path(download_dir) if download_dir else Path(torch.hub.get_dir()) / "checkpoints"
    hub_dir.mkdir(parents=True, exist_ok=True)
    src = hub_dir / VGG19_URL.rsplit("/", 1)[1]
    if not src.is_file():
        log.info("downloading %s to %s", VGG19_URL, src)
        try:
            torch.hub.download_url_to_file(VGG19_URL, str(src), hash_prefix=VGG19_SHA256, progress=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch is a RuntimeError
            raise WeightsError(
                f"could not download {VGG19_URL} ({exc}). Are you offline? Download it on a machine with "
                f"internet, put it at {src}, and run this again; or copy an existing vgg19_cache.pth."
            ) from exc
    digest = _sha256_file(src)
    if digest != VGG19_SHA256:
        raise WeightsError(f"{src} has sha256 {digest}, expected {VGG19_SHA256}: delete it and build again.")
    try:
        full = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read {src} ({exc}): delete it and build again.") from exc
    if torchvision_vgg19() != (VGG19_URL, _TORCHVISION_CONVS):  # a torchvision that moved its VGG-19
        raise WeightsError(
            f"torchvision's VGG-19 is not {VGG19_URL} with convs at {_TORCHVISION_CONVS}; "
            "update stylebot/engine/weights.py"
        )
    state = {}
    for i, idx in enumerate(_TORCHVISION_CONVS, start=1):
        state[f"conv_{i}.weight"] = full[f"features.{idx}.weight"]
        state[f"conv_{i}.bias"] = full[f"features.{idx}.bias"]
    save_state_dict(state, out_path)
    log.info("wrote %s (digest %s)", out_path, state_digest(state))
    return out_path


def main(argv: list[str] | None = None) -> int:
    """``python weights.py build|convert|check ...``; returns the exit status."""
    parser = argparse.ArgumentParser(description="Build, convert or check the VGG-19 weights cache.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build", help="download torchvision's VGG-19 (sha256-checked) and save conv_1..conv_5")
    p.add_argument("out", type=Path, help="where to write the state dict, e.g. vgg19_cache.pth")
    p.add_argument("--download-dir", type=Path, default=None, help="where to keep the 550 MB download")
    p = sub.add_parser("convert", help="convert a legacy torch 0.4 pickle (or any accepted file) to a state dict")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("check", help="load and validate a weights file; print its format-independent digest")
    p.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.cmd == "build":
            print(build_cache(args.out, download_dir=args.download_dir))
        elif args.cmd == "convert":
            print(convert(args.src, args.out))
        else:
            print(f"{args.path}: ok, digest {state_digest(load_state_dict(args.path))}")
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
