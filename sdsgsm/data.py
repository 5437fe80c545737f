"""Image input: decoding uploads safely, the bundled gallery, folders and CIFAR-10.

Every image leaves this module as float32 CHW (or NCHW) in [0, 1], RGB. Nothing here
downloads: the gallery ships under ``assets/gallery`` and CIFAR-10 must already be on
disk. Every bad input raises :class:`ImageError` with a one-sentence message meant for
the user.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ASSETS", "CIFAR10_CLASSES", "IMAGE_EXTENSIONS", "MAX_BYTES", "MAX_PIXELS", "MIN_SIDE",
    "GalleryItem", "ImageError", "decode_image", "gallery", "gallery_item", "image_hash",
    "load_cifar10", "load_folder", "load_gallery", "load_image", "to_tensor",
]

ASSETS: Path = Path(__file__).resolve().parent / "assets"
MAX_PIXELS = 40_000_000  # refuse images with more pixels than this (header size)
MIN_SIDE = 8  # refuse images with a side shorter than this
MAX_BYTES = 200 * 2**20  # refuse encoded files larger than this
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")  # decoders we allow (JPEG: MPO too)
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
CIFAR10_CLASSES: list[str] = ["airplane", "automobile", "bird", "cat", "deer",
                              "dog", "frog", "horse", "ship", "truck"]
DATASETS = ("imagenet", "cifar10", "photo")

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class ImageError(ValueError):
    """An input image or data set cannot be used; the message is meant for the user."""


# --------------------------------------------------------------------------- gallery

@dataclass(frozen=True)
class GalleryItem:
    """One bundled sample image.

    Attributes: ``key`` (path relative to ``assets/gallery``, e.g.
    ``"imagenet/imagenet_00_243.jpg"``), ``path`` (absolute file path), ``label``
    (ImageNet-1k index for 'imagenet'/'photo', CIFAR-10 index for 'cifar10', or None
    when unknown), ``dataset`` ('imagenet' | 'cifar10' | 'photo'), ``caption``.
    """

    key: str
    path: Path
    label: int | None
    dataset: str
    caption: str


_NAME_RE = re.compile(r"^(imagenet|cifar10)_(\d+)_(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_DIRS = {"imagenet": "imagenet", "cifar10": "cifar10", "photo": "photos"}


@functools.lru_cache(maxsize=1)
def _imagenet_names() -> tuple[str, ...]:
    """ImageNet-1k class names from torchvision's weights metadata (no download)."""
    try:
        from torchvision.models import ResNet18_Weights

        return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    except (ImportError, AttributeError, KeyError):  # captions only, never fatal
        return ()


def _labelled_item(path: Path, dataset: str) -> GalleryItem | None:
    """Build an item from a ``<dataset>_<idx>_<label>.<ext>`` file name, or None."""
    match = _NAME_RE.match(path.name)
    if not match or match.group(1).lower() != dataset:
        return None
    idx, label = match.group(2), int(match.group(3))
    if dataset == "cifar10":
        name = CIFAR10_CLASSES[label] if label < len(CIFAR10_CLASSES) else "?"
        caption = f"CIFAR-10 sample {idx}: {name} ({label})"
    else:
        names = _imagenet_names()
        name = names[label] if label < len(names) else f"class {label}"
        caption = f"ImageNet sample {idx}: {name} ({label})"
    key = f"{_DIRS[dataset]}/{path.name}"
    return GalleryItem(key, path, label, dataset, caption)


def _photo_items(folder: Path) -> list[GalleryItem]:
    """Items for ``assets/gallery/photos``, labels and captions from labels.json."""
    meta_file = folder / "labels.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    items = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        entry = meta.get(path.name, {})
        label = entry.get("label")
        caption = entry.get("caption") or path.stem.replace("_", " ")
        items.append(GalleryItem(f"photos/{path.name}", path,
                                 None if label is None else int(label), "photo", caption))
    return items


def image_title(ref: str | os.PathLike) -> str:
    """The name a figure or table shows for an image: the class name of a gallery image (its true
    label, e.g. 'bull mastiff' for ``imagenet/imagenet_00_243.jpg``, 'cat' for a CIFAR-10 sample), a
    photo's caption up to its credit, else the file name without its extension. Pure: reads only the gallery index."""
    text = str(ref)
    try:
        item = gallery_item(text)
    except ValueError:
        item = None
    if item is not None and item.dataset == "photo":
        return item.caption.split(" (")[0].split(";")[0]
    match = _NAME_RE.match(Path(text).name)
    if match:
        dataset, label = match.group(1).lower(), int(match.group(3))
        names = CIFAR10_CLASSES if dataset == "cifar10" else _imagenet_names()
        if label < len(names):
            return names[label]
    return Path(text).stem


@functools.lru_cache(maxsize=1)
def _all_items() -> tuple[GalleryItem, ...]:
    """Every gallery item, sorted by key (cached; the assets are read-only)."""
    root = ASSETS / "gallery"
    items: list[GalleryItem] = []
    for dataset in ("imagenet", "cifar10"):
        folder = root / _DIRS[dataset]
        if folder.is_dir():
            found = (_labelled_item(p, dataset) for p in folder.iterdir())
            items.extend(item for item in found if item is not None)
    if (root / "photos").is_dir():
        items.extend(_photo_items(root / "photos"))
    return tuple(sorted(items, key=lambda item: item.key))


def gallery(dataset: str | None = None) -> list[GalleryItem]:
    """List the bundled sample images.

    Args:
        dataset: 'imagenet', 'cifar10' or 'photo' ('photos' also accepted); None for all.
    Returns:
        The matching items sorted by key.
    """
    if dataset is None:
        return list(_all_items())
    wanted = "photo" if dataset == "photos" else dataset
    if wanted not in DATASETS:
        raise ImageError(f"Unknown gallery data set {dataset!r}: choose one of "
                         f"{', '.join(DATASETS)}.")
    return [item for item in _all_items() if item.dataset == wanted]


def gallery_item(key: str) -> GalleryItem:
    """Look up one gallery item by key, e.g. ``"imagenet/imagenet_00_243.jpg"``.

    Raises:
        ImageError: no gallery image has that key.
    """
    for item in _all_items():
        if item.key == key:
            return item
    raise ImageError(f"There is no gallery image called {key!r}.")


def load_gallery(dataset: str, size: int,
                 limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load gallery images as a batch.

    Args:
        dataset: 'imagenet', 'cifar10' or 'photo'.
        size: output side in pixels (e.g. 224 for ImageNet models, 32 for CIFAR-10).
        limit: keep at most this many items (in key order); None for all.
    Returns:
        x (N, 3, size, size) float32 in [0, 1], y (N,) int64 (-1 where the label is
        unknown), and the N gallery keys.
    """
    items = gallery(dataset)[:limit]
    if not items:
        raise ImageError(f"The gallery has no images for {dataset!r}.")
    x = torch.stack([load_image(item.path, size) for item in items])
    y = torch.tensor([-1 if item.label is None else item.label for item in items],
                     dtype=torch.int64)
    return x, y, [item.key for item in items]


# --------------------------------------------------------------------------- decoding

def _read_source(src: Source, name: str | None = None) -> tuple[str | Path | io.BytesIO, str]:
    """Turn ``src`` into something ``Image.open`` accepts, plus a name for messages (``name``,
    else the file's or the upload's own name, else "upload")."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise ImageError(f"The file {path} does not exist.")
        if not path.is_file():
            raise ImageError(f"{path} is not a file.")
        nbytes = path.stat().st_size
        if nbytes == 0:
            raise ImageError(f"The file {path.name} is empty.")
        if nbytes > MAX_BYTES:
            raise ImageError(f"The file {path.name} is too large ({nbytes / 2**20:.0f} MiB; "
                             f"the limit is {MAX_BYTES // 2**20} MiB).")
        return path, path.name
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif hasattr(src, "getvalue"):
        data = src.getvalue()
    elif hasattr(src, "read"):
        data = src.read(MAX_BYTES + 1)
    else:
        raise ImageError(f"Cannot read an image from a {type(src).__name__}; "
                         "give a path, bytes or a binary file.")
    if isinstance(data, str):
        raise ImageError("The upload was opened in text mode; open the file in binary mode.")
    name = name or str(getattr(src, "name", "upload"))
    if len(data) == 0:
        raise ImageError(f"The file {name} is empty.")
    if len(data) > MAX_BYTES:
        raise ImageError(f"The file {name} is too large (more than "
                         f"{MAX_BYTES // 2**20} MiB).")
    return io.BytesIO(data), name


def _open_checked(fp: str | Path | io.BytesIO, name: str) -> Image.Image:
    """Open lazily (header only) and refuse unknown formats, bombs and tiny images."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp, formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(found.group(1)):,} pixels)" if found else ""
        raise ImageError(f"The image {name} is too large{size}; the limit is "
                         f"{MAX_PIXELS:,} pixels.") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not a supported image (use PNG, JPEG, WebP, BMP, "
                         "TIFF or GIF).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"The image {name} is corrupt and cannot be read.") from exc
    width, height = im.size
    if width * height > MAX_PIXELS:
        im.close()
        raise ImageError(f"The image {name} is too large ({width}×{height} = "
                         f"{width * height:,} pixels; the limit is {MAX_PIXELS:,}).")
    if min(width, height) < MIN_SIDE:
        im.close()
        raise ImageError(f"The image {name} is too small ({width}×{height}); each side "
                         f"must be at least {MIN_SIDE} pixels.")
    return im


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer or float greyscale image to 8-bit 'L'.

    16-bit modes ('I;16*') map 0..65535 to 0..255. Mode 'I' holding values in
    0..65535 is treated as 16-bit too; other 'I' ranges and 'F' images outside [0, 1]
    are min-max normalised.
    """
    arr = np.asarray(im).astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if im.mode.startswith("I;16") or (im.mode == "I" and lo >= 0 and hi <= 65535):
        arr = arr / 65535.0
    elif not (im.mode == "F" and lo >= 0 and hi <= 1):
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8), "L")


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparent areas are composited on white."""
    mode = im.mode
    try:
        if mode.startswith("I") or mode == "F":
            return _high_depth_to_l(im).convert("RGB")
        if mode in ("P", "L", "RGB") and "transparency" in im.info:
            im = im.convert("RGBA")
        if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            white.alpha_composite(rgba)
            return white.convert("RGB")
        return im if mode == "RGB" else im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"Images in colour mode {mode!r} are not supported.") from exc


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except (ValueError, TypeError, KeyError, IndexError, struct.error, SyntaxError):
        return im.copy()


def decode_image(src: Source, *, min_size: int | None = None, name: str | None = None) -> Image.Image:
    """Decode an uploaded or on-disk image into an upright RGB Pillow image.

    Args:
        src: a path (str / PathLike), the encoded bytes, or a binary file-like object
            (e.g. a Streamlit upload). PNG, JPEG, WebP, BMP, TIFF and GIF (first frame)
            in any Pillow mode are accepted.
        min_size: optional hint: JPEGs may be decoded at 1/2, 1/4 or 1/8 scale as long
            as both sides stay >= min_size (saves memory for big photos).
        name: the file name to use in messages for bytes (e.g. the upload's own name).
    Returns:
        A fully loaded ``PIL.Image.Image`` in mode 'RGB', EXIF orientation applied,
        alpha composited on white, high-bit-depth data scaled to 8 bits.
    Raises:
        ImageError: empty, unreadable, unsupported, truncated/corrupt, larger than
            MAX_PIXELS, or with a side shorter than MIN_SIDE.
    """
    fp, name = _read_source(src, name)
    im = _open_checked(fp, name)
    try:
        with im:
            if min_size and im.format in ("JPEG", "MPO"):
                im.draft(None, (min_size, min_size))
            im.load()
            return _to_rgb(_upright(im))
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"The image {name} is truncated or corrupt and cannot be "
                         "decoded.") from exc


# --------------------------------------------------------------------------- tensors

def to_tensor(img: Image.Image, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and centre-crop to a square tensor.

    Args:
        img: a Pillow image (any mode; converted to RGB).
        size: output side in pixels, >= 1.
    Returns:
        float32 tensor (3, size, size) in [0, 1].
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ImageError(f"The output size must be a positive integer, not {size!r}.")
    if not isinstance(img, Image.Image):
        raise ImageError(f"Expected a PIL image, got a {type(img).__name__}.")
    width, height = img.size
    if min(width, height) < 1:
        raise ImageError("The image is empty (zero width or height).")
    img = _to_rgb(img)
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    # box= crops the centre square in source coordinates; reducing_gap first shrinks
    # big images by an integer factor (cheap), then resamples with bicubic antialias.
    out = img.resize((size, size), Image.Resampling.BICUBIC,
                     box=(left, top, left + side, top + side), reducing_gap=3.0)
    chw = np.asarray(out, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32, order="C")
    return torch.from_numpy(chw / np.float32(255.0))  # numpy: faster than torch here


def load_image(src: Source, size: int) -> torch.Tensor:
    """Decode ``src`` (see :func:`decode_image`) and return a (3, size, size) tensor.

    Returns:
        float32 tensor (3, size, size) in [0, 1].
    """
    return to_tensor(decode_image(src, min_size=size), size)


def image_hash(data: bytes | bytearray | memoryview | torch.Tensor | np.ndarray) -> str:
    """Short, stable hex digest for use as a cache key.

    Args:
        data: raw bytes, or a tensor / array (its dtype and shape are hashed too, so
            equal bytes with a different shape give a different key).
    Returns:
        16 hex characters (64-bit BLAKE2b).
    """
    digest = hashlib.blake2b(digest_size=8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        digest.update(bytes(data))
    elif isinstance(data, torch.Tensor):
        t = data.detach().cpu().contiguous()
        digest.update(f"torch:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data)
        digest.update(f"numpy:{arr.dtype.str}:{arr.shape}".encode())
        digest.update(arr.tobytes())
    else:
        raise TypeError(f"image_hash needs bytes, a tensor or an array, "
                        f"not {type(data).__name__}")
    return digest.hexdigest()


# --------------------------------------------------------------------------- folders

def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden entries skipped), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def _round_robin(groups: list[list[tuple[Path, int]]]) -> list[tuple[Path, int]]:
    """Interleave per-class lists so a ``limit`` keeps every class represented."""
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def _folder_entries(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, label) pairs and class names for an ImageFolder or flat folder."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    groups = [[(f, label) for f in _image_files(d)] for label, d in enumerate(subdirs)]
    if any(groups):
        return _round_robin(groups), [d.name for d in subdirs]
    flat = sorted(p for p in root.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_EXTENSIONS)
    return [(f, -1) for f in flat], []


def load_folder(root: str | os.PathLike, size: int,
                limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load an ImageFolder-style directory, or a flat folder of images.

    With sub-folders, each sub-folder is a class (sorted names -> indices 0..K-1) and
    images are taken round-robin across classes; loose files in ``root`` are then
    ignored. Without sub-folders holding images, the images in ``root`` get label -1.
    Unreadable files are skipped with a ``warnings.warn``.

    Args:
        root: the directory.
        size: output side in pixels.
        limit: keep at most this many images; None for all.
    Returns:
        x (N, 3, size, size) float32 in [0, 1], y (N,) int64, class names (empty list
        for a flat folder).
    """
    path = Path(root)
    if not path.exists():
        raise ImageError(f"The folder {path} does not exist.")
    if not path.is_dir():
        raise ImageError(f"{path} is not a folder.")
    entries, classes = _folder_entries(path)
    if not entries:
        raise ImageError(f"No images (PNG, JPEG, WebP, BMP, TIFF, GIF) found in {path}.")
    images, labels, failed = [], [], []
    for file, label in entries:
        if limit is not None and len(images) >= limit:
            break
        try:
            images.append(load_image(file, size))
        except ImageError as exc:
            failed.append(f"{file.name}: {exc}")
            continue
        labels.append(label)
    if failed:
        warnings.warn(f"Skipped {len(failed)} unreadable file(s) in {path}: "
                      + "; ".join(failed[:5]), stacklevel=2)
    if not images:
        raise ImageError(f"None of the {len(failed)} image file(s) in {path} could be read.")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes


def load_cifar10(root: str | os.PathLike, limit: int | None = None,
                 train: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load CIFAR-10 from ``root/cifar-10-batches-py`` (never downloads).

    Args:
        root: folder that contains the extracted ``cifar-10-batches-py`` directory.
        limit: keep the first ``limit`` images; None for all.
        train: the 50k training split instead of the 10k test split.
    Returns:
        x (N, 3, 32, 32) float32 in [0, 1], y (N,) int64 in 0..9, the 10 class names.
    """
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(str(root), train=train, download=False)
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ImageError(f"CIFAR-10 not found under {root}: this tool never downloads; "
                         "place the extracted cifar-10-batches-py folder there.") from exc
    n = len(ds.data) if limit is None else min(limit, len(ds.data))
    nchw = ds.data[:n].transpose(0, 3, 1, 2).astype(np.float32, order="C")
    y = torch.tensor(ds.targets[:n], dtype=torch.int64)
    return torch.from_numpy(nchw / np.float32(255.0)), y, list(ds.classes)

