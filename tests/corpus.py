"""The bad-input corpus, generated on the fly: no binary blobs in the repository.

Each case is (name, payload bytes or a path maker, accepted?). ``tests/test_corpus.py`` sends every
case through every entry point that accepts it: the Python API, the CLI, AppTest and (a subset)
the real browser.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from sdsgsm.models import cifar_resnet18
from sdsgsm.params import PARAMS, Param

MARKER_NAME = "sdsgsm_corpus_pickle_ran"  # created by the evil pickle if it is ever executed


@dataclass(frozen=True)
class Case:
    name: str  # the file name the user gives it
    data: bytes | None  # None: not a file (see ``kind``)
    ok: bool  # accepted (True) or refused with a one-line message (False)
    kind: str = "file"  # "file" | "dir" | "missing"


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _bomb_png(side: int = 60000) -> bytes:
    """A valid PNG signature and IHDR that claim side × side pixels, with no image data."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def _exif_rotated() -> bytes:
    im = Image.fromarray(_noise(60, 100))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    return _save(im, "JPEG", exif=exif)


def _animated_gif(frames: int = 60) -> bytes:
    ims = [Image.fromarray(_noise(64, 64, seed)).convert("P") for seed in range(frames)]
    return _save(ims[0], "GIF", save_all=True, append_images=ims[1:], duration=20, loop=0)


def _palette_transparent() -> bytes:
    im = Image.fromarray(_noise(64, 64)).convert("P")
    return _save(im, "PNG", transparency=0)


def image_cases() -> list[Case]:
    """Every image case of the bad-input corpus, generated in memory."""
    jpeg = _save(Image.fromarray(_noise(96, 96)), "JPEG", quality=90)
    big = Image.new("RGB", (10000, 10000), (120, 80, 40))
    return [
        Case("notes.jpg", b"these are lecture notes, not a photo\n" * 20, False),
        Case("empty.png", b"", False),
        Case("truncated.jpg", jpeg[: len(jpeg) // 2], False),
        Case("one.png", _save(Image.new("RGB", (1, 1)), "PNG"), False),
        Case("three.png", _save(Image.new("RGB", (3, 3)), "PNG"), False),
        Case("deep16.png", _save(Image.fromarray((np.arange(64 * 64, dtype=np.uint16)
                                                 .reshape(64, 64) * 16).astype(np.uint16)), "PNG"), True),
        Case("float.tif", _save(Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32)
                                                .reshape(64, 64), "F"), "TIFF"), True),
        Case("cmyk.jpg", _save(Image.fromarray(_noise(64, 64)).convert("CMYK"), "JPEG"), True),
        Case("palette.png", _palette_transparent(), True),
        Case("animated.gif", _animated_gif(), True),
        Case("rotated.jpg", _exif_rotated(), True),
        Case("drawing.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
                            b'<rect width="64" height="64" fill="red"/></svg>', False),
        Case("bomb.png", _bomb_png(), False),
        Case("huge.jpg", _save(big, "JPEG", quality=20), False),
        Case("a_folder", None, False, kind="dir"),
        Case("missing.png", None, False, kind="missing"),
    ]


def materialise(case: Case, folder: Path) -> Path:
    """Write ``case`` under ``folder`` (a directory for kind 'dir'; nothing for 'missing')."""
    path = folder / case.name
    if case.kind == "dir":
        path.mkdir(exist_ok=True)
    elif case.kind == "file":
        path.write_bytes(case.data)
    return path


# ----------------------------------------------------------------------------- checkpoints
class _Evil:
    """Unpickling this would run ``open(marker, 'w')``: the file must never appear."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _script_bytes(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    return buf.getvalue()


class _Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this model refuses to run")


class _RaisesOnOne(nn.Module):
    """Works on the loader's two-image probe, raises on a single image (an attack's batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            raise RuntimeError("batch of one is not supported")
        return x.flatten(1)[:, :10]


class _ThreeD(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10].unsqueeze(-1)  # (N, K, 1)


class _NaN(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10] * float("nan")


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x00" * (64 * 2**20))  # 64 MiB of zeros, ~64 KiB packed
    return buf.getvalue()


def checkpoint_cases(marker: Path) -> list[tuple[str, bytes, str]]:
    """(name, bytes, a word the refusal message must contain) for every refused checkpoint."""
    nan_net = cifar_resnet18(10)
    with torch.no_grad():
        nan_net.fc.weight.fill_(float("nan"))
    wrong = cifar_resnet18(10).state_dict()
    wrong["conv1.weight"] = torch.zeros(64, 3, 7, 7)
    rng = np.random.default_rng(0)
    return [
        ("evil_zip.pt", _torch_bytes({"w": _Evil(str(marker))}), "safely"),
        ("evil_legacy.pt", pickle.dumps(_Evil(str(marker))), "safely"),
        ("random.pt", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a PyTorch checkpoint"),
        ("bomb.pt", _zip_bomb(), "unpack"),
        ("wrong_shapes.pt", _torch_bytes(wrong), "do not fit"),
        ("raises.pt", _script_bytes(_Raises()), "failed"),
        ("three_d.pt", _script_bytes(_ThreeD()), "(N, K)"),
        ("nan_script.pt", _script_bytes(_NaN()), "NaN"),
        ("nan_weights.pt", _torch_bytes(nan_net.state_dict()), "NaN"),
    ]


def raises_on_one() -> bytes:
    """A TorchScript checkpoint that loads but fails when attacked (one image per batch)."""
    return _script_bytes(_RaisesOnOne())


def seven_classes() -> bytes:
    """A valid state_dict with an unusual class count: accepted, labelled "class i"."""
    return _torch_bytes(cifar_resnet18(7).state_dict())


# ----------------------------------------------------------------------------- parameters
def _shown_bound(p: Param, value: float) -> float:
    return value * p.scale


def parameter_cases() -> list[tuple[str, str, bool]]:
    """(parameter, raw text as typed in a link or a flag, accepted?) for every spec parameter:
    at, just outside and far outside its range, NaN, ±inf, a non-number and a very long string."""
    cases = []
    for p in PARAMS.values():
        bad_texts = ["nan", "inf", "-inf", "abc", "9" * 5000, "x" * 5000]
        if p.kind is str:
            cases += [(p.name, p.choices[0], True), (p.name, p.choices[-1], True), (p.name, "nope", False),
                      (p.name, "x" * 5000, False)]
            continue
        if p.lo is not None:
            lo = _shown_bound(p, p.lo)
            if not (p.auto and lo <= 0):
                cases.append((p.name, repr(int(lo) if p.kind is int and lo == int(lo) else lo), not p.odd or
                              int(lo) % 2 == 1))
            below = lo - (1 if p.kind is int else max(abs(lo) * 1e-3, 1e-3))
            if not (p.auto and below == 0):
                cases.append((p.name, repr(int(below) if p.kind is int else below), False))
            cases.append((p.name, repr(int(lo - 1e6) if p.kind is int else lo - 1e6), False))
        if p.hi is not None:
            hi = _shown_bound(p, p.hi)
            hi_text = str(int(hi)) if p.kind is int else repr(hi)
            cases.append((p.name, hi_text, not p.odd or int(hi) % 2 == 1))
            above = hi + (1 if p.kind is int else max(abs(hi) * 1e-3, 1e-3))
            cases.append((p.name, str(int(above)) if p.kind is int else repr(above), False))
            cases.append((p.name, str(int(hi * 1e6)) if p.kind is int else repr(hi * 1e6), False))
        if p.kind is int:
            bad_texts.append("2.5")
        cases += [(p.name, t, False) for t in bad_texts]
    return cases
