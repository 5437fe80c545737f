"""Tests for sdsgsm.data: gallery, decoding of awkward/bad images, folders, CIFAR-10."""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sdsgsm import data
from sdsgsm.data import ImageError, decode_image, load_image, to_tensor

# ----------------------------------------------------------------------------- helpers


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    """Encode a Pillow image to bytes in ``fmt``."""
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def two_colour(size=(32, 24), left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    """RGB image: left half ``left``, right half ``right``."""
    w, h = size
    im = Image.new("RGB", size, right)
    im.paste(left, (0, 0, w // 2, h))
    return im


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR is patched to claim width x height (CRC fixed)."""
    raw = bytearray(encode(Image.new("L", (8, 8)), "PNG"))
    assert raw[12:16] == b"IHDR"
    raw[16:20] = width.to_bytes(4, "big")
    raw[20:24] = height.to_bytes(4, "big")
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    return bytes(raw)


def rgb_at(img: Image.Image, xy) -> np.ndarray:
    """Pixel of an RGB image as an int array."""
    return np.array(img.getpixel(xy), dtype=int)


def assert_user_message(exc: pytest.ExceptionInfo, pattern: str) -> None:
    """The error is one readable sentence that matches ``pattern``."""
    msg = str(exc.value)
    assert re.search(pattern, msg, re.IGNORECASE), msg
    assert "\n" not in msg and msg.endswith("."), msg


# ----------------------------------------------------------------------------- gallery


def test_gallery_imagenet_has_20_labelled_items():
    items = data.gallery("imagenet")
    assert len(items) == 20
    assert all(0 <= it.label <= 999 for it in items)
    assert all(it.key == f"imagenet/{it.path.name}" and it.path.is_file() for it in items)
    assert items[0].key == "imagenet/imagenet_00_243.jpg" and items[0].label == 243


def test_gallery_cifar10_has_20_labelled_items():
    items = data.gallery("cifar10")
    assert len(items) == 20
    assert all(0 <= it.label <= 9 for it in items)
    assert [it.label for it in items[:4]] == [3, 8, 8, 0]  # first CIFAR-10 test images
    assert "cat" in items[0].caption


def test_gallery_photos_and_labels_json_agree():
    items = data.gallery("photo")
    assert len(items) >= 6
    assert data.gallery("photos") == items
    labels = {it.path.name: it.label for it in items}
    assert labels["chelsea.jpg"] in (281, 282, 285)
    assert labels["coffee.jpg"] == 967
    assert all(lab is None or 0 <= lab <= 999 for lab in labels.values())
    assert all(it.caption for it in items)


def test_gallery_all_is_sorted_union_and_lookup_works():
    everything = data.gallery()
    assert [it.key for it in everything] == sorted(it.key for it in everything)
    assert len(everything) == sum(len(data.gallery(d)) for d in data.DATASETS)
    item = data.gallery_item("imagenet/imagenet_00_243.jpg")
    assert item.label == 243 and item.dataset == "imagenet"
    with pytest.raises(ImageError, match="no gallery image"):
        data.gallery_item("imagenet/nope.jpg")
    with pytest.raises(ImageError, match="Unknown gallery data set"):
        data.gallery("mnist")


@pytest.mark.parametrize("key", [it.key for it in data.gallery()])
def test_every_gallery_file_loads(key):
    item = data.gallery_item(key)
    size = 32 if item.dataset == "cifar10" else 224
    x = load_image(item.path, size)
    assert x.shape == (3, size, size) and x.dtype == torch.float32 and x.is_contiguous()
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.std() > 0.02  # a real picture, not a constant


def test_load_gallery_batch():
    x, y, keys = data.load_gallery("photo", 64)
    items = data.gallery("photo")
    assert x.shape == (len(items), 3, 64, 64) and y.dtype == torch.int64
    assert keys == [it.key for it in items]
    assert y.tolist() == [-1 if it.label is None else it.label for it in items]
    x, y, keys = data.load_gallery("cifar10", 32, limit=5)
    assert x.shape == (5, 3, 32, 32) and y.tolist() == [3, 8, 8, 0, 6]


# ----------------------------------------------------------------------------- bad inputs


def test_empty_bytes_and_empty_file(tmp_path):
    with pytest.raises(ImageError) as exc:
        decode_image(b"")
    assert_user_message(exc, "empty")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError) as exc:
        decode_image(tmp_path / "empty.png")
    assert_user_message(exc, "empty")
    with pytest.raises(ImageError) as exc:
        decode_image(io.BytesIO(b""))
    assert_user_message(exc, "empty")


def test_text_file_with_image_extension(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageError) as exc:
        decode_image(path)
    assert_user_message(exc, "not a supported image")


def test_random_bytes_are_refused():
    junk = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with pytest.raises(ImageError, match="not a supported image"):
        decode_image(junk)


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(1)
    noisy = Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    raw = encode(noisy, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError) as exc:
        decode_image(path)
    assert_user_message(exc, "truncated or corrupt")


def test_truncated_png():
    rng = np.random.default_rng(2)
    raw = encode(Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(raw[: len(raw) // 2])


@pytest.mark.parametrize("side", [7_000, 10_000, 50_000])
def test_decompression_bomb_is_refused(side):
    # 7000^2 trips our MAX_PIXELS, 10000^2 Pillow's warning, 50000^2 Pillow's error.
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError) as exc:
        decode_image(png_claiming(side, side))
    assert_user_message(exc, "too large")
    assert f"{side * side:,}" in str(exc.value)
    assert Image.MAX_IMAGE_PIXELS == before
    with warnings.catch_warnings():  # our temporary 'error' filter did not leak
        warnings.simplefilter("default")
        assert not any(f[0] == "error" and f[2] is Image.DecompressionBombWarning
                       for f in warnings.filters)


@pytest.mark.parametrize("size", [(1, 1), (4, 100), (100, 7)])
def test_tiny_images_are_refused(size):
    with pytest.raises(ImageError) as exc:
        decode_image(encode(Image.new("RGB", size, "red"), "PNG"))
    assert_user_message(exc, "too small")


def test_file_too_large_in_bytes(monkeypatch):
    monkeypatch.setattr(data, "MAX_BYTES", 100)
    with pytest.raises(ImageError, match="too large"):
        decode_image(encode(two_colour(), "BMP"))


def test_bad_sources(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        decode_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="not a file"):
        decode_image(tmp_path)
    with pytest.raises(ImageError, match="Cannot read an image"):
        decode_image(12345)
    (tmp_path / "t.png").write_bytes(encode(two_colour(), "PNG"))
    with (open(tmp_path / "t.png", encoding="latin-1") as text_handle,
          pytest.raises(ImageError, match="text mode")):
        decode_image(text_handle)


# ----------------------------------------------------------------------------- good inputs


class ReadOnly:
    """A minimal binary file-like object with only read() (no getvalue/seek)."""

    def __init__(self, raw: bytes):
        self._buf = io.BytesIO(raw)

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(n)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_formats_and_source_kinds(fmt, tmp_path):
    raw = encode(two_colour(), fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(raw)
    for src in (raw, bytearray(raw), io.BytesIO(raw), ReadOnly(raw), path, str(path)):
        img = decode_image(src)
        assert img.mode == "RGB" and img.size == (32, 24)
        assert np.abs(rgb_at(img, (4, 12)) - (255, 0, 0)).max() < 40
        assert np.abs(rgb_at(img, (28, 12)) - (0, 0, 255)).max() < 40


def test_grayscale_becomes_three_equal_channels():
    grey = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1)), "L")
    x = load_image(encode(grey, "PNG"), 16)
    assert x.shape == (3, 16, 16)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert x.min() < 0.1 and x.max() > 0.9


def test_la_transparent_is_white_and_opaque_kept():
    la = Image.new("LA", (16, 16), (0, 255))
    la.paste((0, 0), (0, 0, 8, 16))  # left half: black but fully transparent
    img = decode_image(encode(la, "PNG"))
    assert tuple(rgb_at(img, (2, 8))) == (255, 255, 255)
    assert tuple(rgb_at(img, (12, 8))) == (0, 0, 0)


def test_rgba_composited_on_white():
    rgba = Image.new("RGBA", (16, 16), (0, 0, 255, 255))
    rgba.paste((255, 0, 0, 0), (0, 0, 8, 16))  # transparent red
    rgba.paste((255, 0, 0, 128), (0, 0, 8, 4))  # half-transparent red
    img = decode_image(encode(rgba, "PNG"))
    assert tuple(rgb_at(img, (2, 8))) == (255, 255, 255)
    assert tuple(rgb_at(img, (12, 8))) == (0, 0, 255)
    r, g, b = rgb_at(img, (2, 1))
    assert r == 255 and 120 <= g <= 135 and 120 <= b <= 135


def test_palette_with_transparency():
    pal = Image.new("P", (16, 16), 1)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(0, (0, 0, 8, 16))
    raw = encode(pal, "PNG", transparency=0)
    assert Image.open(io.BytesIO(raw)).mode == "P"
    img = decode_image(raw)
    assert tuple(rgb_at(img, (2, 8))) == (255, 255, 255)  # index 0 is transparent
    assert tuple(rgb_at(img, (12, 8))) == (0, 255, 0)


def test_sixteen_bit_png_scaled_to_eight_bit():
    arr = np.zeros((16, 16), dtype=np.uint16)
    arr[:, 8:] = 65535
    arr[:4, :8] = 257 * 100
    raw = encode(Image.fromarray(arr), "PNG")
    assert Image.open(io.BytesIO(raw)).mode.startswith("I")  # really 16-bit
    img = decode_image(raw)
    assert tuple(rgb_at(img, (2, 8))) == (0, 0, 0)
    assert tuple(rgb_at(img, (12, 8))) == (255, 255, 255)
    assert tuple(rgb_at(img, (2, 1))) == (100, 100, 100)


def test_32_bit_integer_tiff_and_float_image():
    arr = np.zeros((16, 16), dtype=np.int32)
    arr[:, 8:] = 65535
    raw = encode(Image.fromarray(arr), "TIFF")
    assert Image.open(io.BytesIO(raw)).mode == "I"
    img = decode_image(raw)
    assert tuple(rgb_at(img, (12, 8))) == (255, 255, 255)
    assert tuple(rgb_at(img, (2, 8))) == (0, 0, 0)
    f = Image.fromarray(np.full((16, 16), 0.5, dtype=np.float32), "F")
    x = to_tensor(f, 16)
    assert torch.allclose(x, torch.full_like(x, 128 / 255))


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    raw = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(raw)).mode == "CMYK"
    img = decode_image(raw)
    r, g, b = rgb_at(img, (8, 8))
    assert r > 220 and g < 40 and b < 40


def test_one_bit_image():
    bw = Image.new("1", (16, 16), 0)
    bw.paste(1, (8, 0, 16, 16))
    img = decode_image(encode(bw, "PNG"))
    assert tuple(rgb_at(img, (2, 8))) == (0, 0, 0)
    assert tuple(rgb_at(img, (12, 8))) == (255, 255, 255)


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (60, 30), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 10, 10))  # red block in the top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    raw = encode(im, "JPEG", quality=95, exif=exif.tobytes())
    img = decode_image(raw)
    assert img.size == (30, 60)  # aspect flipped
    assert rgb_at(img, (26, 3))[0] > 200  # red block moved to the top-right corner
    assert rgb_at(img, (3, 3))[2] > 200  # top-left is blue now


def test_animated_gif_gives_first_frame():
    red, blue = Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")
    raw = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(io.BytesIO(raw)).n_frames == 2
    img = decode_image(raw)
    assert tuple(rgb_at(img, (8, 8))) == (255, 0, 0)


# ----------------------------------------------------------------------------- to_tensor


def test_to_tensor_large_image():
    big = Image.new("RGB", (4096, 4096), (10, 200, 30))
    x = to_tensor(big, 224)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x[:, 100, 100], torch.tensor([10, 200, 30]) / 255.0, atol=1e-6)


def test_large_jpeg_is_decoded_at_reduced_scale():
    raw = encode(Image.new("RGB", (4096, 4096), "white"), "JPEG", quality=80)
    assert decode_image(raw, min_size=224).size == (512, 512)  # 1/8 DCT scaling
    assert decode_image(raw).size == (4096, 4096)
    assert load_image(raw, 224).shape == (3, 224, 224)


def test_to_tensor_resizes_short_side_then_centre_crops():
    im = Image.new("RGB", (90, 30), (255, 0, 0))
    im.paste((0, 255, 0), (30, 0, 60, 30))  # centre third green
    im.paste((0, 0, 255), (60, 0, 90, 30))
    x = to_tensor(im, 15)
    assert x.shape == (3, 15, 15)
    assert torch.allclose(x[:, 2:13, 2:13].mean(dim=(1, 2)), torch.tensor([0.0, 1.0, 0.0]),
                          atol=0.02)
    # scale 1: exactly the centre crop, no resampling change
    arr = np.random.default_rng(3).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    x = to_tensor(Image.fromarray(arr), 32)
    expected = torch.from_numpy(arr[:, 16:48].copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(x, expected)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_to_tensor_rejects_bad_size(size):
    with pytest.raises(ImageError, match="positive integer"):
        to_tensor(Image.new("RGB", (16, 16)), size)


# ----------------------------------------------------------------------------- folders


def make_image_folder(root: Path) -> None:
    """cat/ with 3 red images, dog/ with 2 blue images + 1 corrupt, .hidden/ ignored."""
    for cls, colour, n in (("cat", (255, 0, 0), 3), ("dog", (0, 0, 255), 2)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40, 20), colour).save(root / cls / f"{i}.png")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "dog" / "readme.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.new("RGB", (20, 20)).save(root / ".hidden" / "x.png")


def test_load_folder_imagefolder(tmp_path):
    make_image_folder(tmp_path)
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        x, y, classes = data.load_folder(tmp_path, 24)
    assert classes == ["cat", "dog"]
    assert x.shape == (5, 3, 24, 24) and x.dtype == torch.float32
    assert sorted(y.tolist()) == [0, 0, 0, 1, 1]
    assert torch.allclose(x[y == 0][:, 0].mean(), torch.tensor(1.0))  # cats are red
    assert torch.allclose(x[y == 1][:, 2].mean(), torch.tensor(1.0))  # dogs are blue


def test_load_folder_limit_keeps_classes_balanced(tmp_path):
    make_image_folder(tmp_path)
    x, y, _ = data.load_folder(tmp_path, 16, limit=2)
    assert x.shape[0] == 2 and y.tolist() == [0, 1]


def test_load_folder_flat(tmp_path):
    for i in range(3):
        Image.new("L", (30, 30), 50 * i).save(tmp_path / f"img{i}.jpg")
    x, y, classes = data.load_folder(tmp_path, 16)
    assert x.shape == (3, 3, 16, 16) and y.tolist() == [-1, -1, -1] and classes == []


def test_load_folder_errors(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        data.load_folder(tmp_path / "nope", 32)
    (tmp_path / "file.png").write_bytes(encode(two_colour(), "PNG"))
    with pytest.raises(ImageError, match="not a folder"):
        data.load_folder(tmp_path / "file.png", 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    with pytest.raises(ImageError, match="No images"):
        data.load_folder(empty, 32)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_text("nope")
    with pytest.warns(UserWarning), pytest.raises(ImageError, match="could be read"):
        data.load_folder(broken, 32)


# ----------------------------------------------------------------------------- CIFAR-10


def test_load_cifar10_missing_says_no_download(tmp_path):
    with pytest.raises(ImageError) as exc:
        data.load_cifar10(tmp_path)
    assert "download" in str(exc.value) and str(tmp_path) in str(exc.value)
    assert "cifar-10-batches-py" in str(exc.value)


def test_load_cifar10_reads_batches(tmp_path, monkeypatch):
    """A tiny fake test batch in CIFAR's pickle format (integrity check bypassed)."""
    import torchvision.datasets.cifar as tv_cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    pixels = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    pixels[0, 0] = 255  # image 0: pure red
    pixels[1, 2] = 255  # image 1: pure blue
    batch = {"data": pixels.reshape(4, 3072), "labels": [3, 8, 8, 0]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": data.CIFAR10_CLASSES}))
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    x, y, classes = data.load_cifar10(tmp_path, limit=3)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert y.tolist() == [3, 8, 8] and classes == data.CIFAR10_CLASSES
    assert torch.equal(x[0, 0], torch.ones(32, 32)) and x[0, 1:].max() == 0
    assert torch.equal(x[1, 2], torch.ones(32, 32)) and x[1, :2].max() == 0


# ----------------------------------------------------------------------------- hashing


def test_image_hash():
    h = data.image_hash(b"abc")
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert h == data.image_hash(bytearray(b"abc")) != data.image_hash(b"abd")
    t = torch.arange(12, dtype=torch.float32)
    assert data.image_hash(t) == data.image_hash(t.clone())
    assert data.image_hash(t) != data.image_hash(t.reshape(3, 4))
    assert data.image_hash(t) != data.image_hash(t + 1e-3)
    assert data.image_hash(t.to(torch.bfloat16))  # dtypes numpy lacks still work
    assert data.image_hash(t.numpy()) == data.image_hash(t.numpy().copy())
    assert data.image_hash(t.numpy()) != data.image_hash(t.numpy().reshape(3, 4))
    with pytest.raises(TypeError):
        data.image_hash("abc")
