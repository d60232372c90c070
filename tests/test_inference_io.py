"""Every input kind through SR and downscaling: mode, size (x4 or /4) and bit depth come
back right; 16-bit PNG (pixels, text, ICC); EXIF orientation; the Python API on PIL and numpy."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import sdflow
from sdflow import imageio
from sdflow.inference import batch
from sdflow.inference.inputs import collect_inputs
from sdflow.inference.metadata import ModelIdentity, read_metadata

from helpers import tiny_model
from inference_helpers import one_thread, real_pixels

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def model(shared):
    return tiny_model(shared)


# ---------------------------------------------------------------------------- 16-bit PNG
def _icc() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_roundtrip_text_icc_and_pillow_agrees(tmp_path, channels):
    rng = np.random.default_rng(channels)
    # smooth rows and noise, so that the encoder picks several filter types
    a = (np.cumsum(rng.integers(0, 900, (23, 31, channels)), axis=1) % 65536).astype(np.uint16)
    a[5:9] = rng.integers(0, 65536, (4, 31, channels))
    text = {"Software": "sdflow test", "sdflow:key": "value", "sdflow:unicode": "tau \u03c4",
            "sdflow:latin1": "caf\u00e9"}
    path = imageio.write_image(tmp_path / "a.png", a, pnginfo=text, icc_profile=_icc())
    got = imageio.read_image(path)
    assert got.bit_depth == 16 and got.icc_profile == _icc()
    px = np.dstack([got.rgb[:, :, :1] if channels <= 2 else got.rgb]
                   + ([got.alpha] if got.alpha is not None else []))
    assert px.dtype == np.uint16 and np.array_equal(px, a)  # bit-exact
    assert read_metadata(path) == {"key": "value", "unicode": "tau \u03c4",
                                         "latin1": "caf\u00e9"}
    with Image.open(path) as img:  # Pillow reads it too (8-bit for colour), CRCs checked
        assert img.text == text and img.info["icc_profile"] == _icc()
        img.load()
        p = np.asarray(img)
    if channels == 1:
        assert np.array_equal(p, a[:, :, 0])
    elif channels == 3:
        assert np.array_equal(p, (a >> 8).astype(np.uint8))
    chunks = _chunk_types(path.read_bytes())
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    assert chunks.index(b"iCCP") < chunks.index(b"IDAT")  # iCCP must precede the pixels
    assert chunks.count(b"tEXt") == 3 and chunks.count(b"iTXt") == 1


def _chunk(t: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))


def _chunk_types(data: bytes) -> list[bytes]:
    out, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        out.append(data[pos + 4 : pos + 8])
        pos += 12 + n
    return out


#: Adam7 passes: (row start, column start, row step, column step)
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
         (1, 0, 2, 1))


def test_png16_reads_interlaced_and_trns(tmp_path):
    """Adam7 (written here with the None filter) and a tRNS colour key (becomes alpha)."""
    rng = np.random.default_rng(0)
    h, w = 11, 13
    a = rng.integers(0, 65536, (h, w, 3)).astype(np.uint16)
    a[3, 4] = (1, 2, 3)
    raw = b""
    for y0, x0, dy, dx in ADAM7:
        sub = a[y0::dy, x0::dx]
        if sub.size:
            for row in sub:
                raw += b"\0" + row.astype(">u2").tobytes()
    data = (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 1))
            + _chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    (tmp_path / "i.png").write_bytes(data)
    got = imageio.read_image(tmp_path / "i.png")
    assert got.mode == "RGBA" and np.array_equal(got.rgb, a)
    assert got.alpha[3, 4] == 0 and (got.alpha == 65535).sum() == h * w - 1


def test_png16_truncated_or_corrupt_gives_a_read_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, (40, 50, 3)).astype(np.uint16)
    data = imageio.write_image(tmp_path / "ok.png", a, pnginfo={"k": "v"}).read_bytes()
    idat = data.index(b"IDAT")
    damaged = {"half.png": data[: len(data) // 2], "header.png": data[: idat + 10]}
    for name, pos in (("idat_crc.png", idat + 50), ("idat_type.png", idat + 3)):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        damaged[name] = bytes(bad)
    for name, blob in damaged.items():
        (tmp_path / name).write_bytes(blob)
        # Pillow already refuses an unknown critical chunk on opening; libpng the rest
        hint = "not a readable image" if name == "idat_type.png" else "corrupt or truncated"
        with pytest.raises(imageio.ImageReadError, match=hint) as err:
            imageio.read_image(tmp_path / name)
        assert str(err.value).startswith(f"{tmp_path / name}: "), name
    for blob in damaged.values():  # the decoder alone: ValueError, never libpng's own types
        with pytest.raises(ValueError, match="PNG decoder"):
            imageio.decode_png16(blob)
    with pytest.raises(TypeError, match="uint16"):
        imageio.encode_png16(a.astype(np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    base = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    img = Image.fromarray(base)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.jpg", exif=exif, quality=100)
    with Image.open(tmp_path / "o.jpg") as im:
        im.load()
        ref = np.asarray(ImageOps.exif_transpose(im))
    got = imageio.read_image(tmp_path / "o.jpg").rgb
    assert np.array_equal(got, ref)
    assert np.array_equal(imageio._orient(np.asarray(Image.open(tmp_path / "o.jpg")),
                                          orientation), ref)


# ---------------------------------------------------------------------------- input kinds
def _kinds(shared, tmp_path) -> dict[str, tuple[str, int, str]]:
    """Write one small file per input kind; name -> (expected output PIL mode, channels
    in the decoded output array, bit depth)."""
    rgb = real_pixels(shared, 10, 9)
    rgb16 = rgb.astype(np.uint16) * 257 + 3
    alpha = np.linspace(0, 255, 90).reshape(10, 9).astype(np.uint8)
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rgb).save(d / "rgb8.png")
    imageio.write_image(d / "rgb16.png", rgb16)
    imageio.write_image(d / "rgba16.png", np.dstack([rgb16, alpha.astype(np.uint16) * 257]))
    imageio.write_image(d / "la16.png", np.dstack([rgb16[:, :, 0], rgb16[:, :, 1]]))
    Image.fromarray(rgb16[:, :, 1]).save(d / "gray16.png")  # I;16 through Pillow
    Image.fromarray(np.dstack([rgb, alpha])).save(d / "rgba8.png")
    Image.fromarray(rgb[:, :, 0]).save(d / "gray8.png")
    Image.fromarray(np.dstack([rgb[:, :, 0], alpha])).save(d / "la8.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    pt = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    pt.info["transparency"] = 0
    pt.save(d / "palette_t.png", transparency=0)
    Image.fromarray(rgb[:, :, 0] > 100).save(d / "bilevel.png")
    Image.fromarray(rgb).save(d / "photo.jpg", quality=95)
    Image.fromarray(rgb[:, :, 0]).save(d / "grayjpg.jpg")
    Image.fromarray(rgb).save(d / "lossless.webp", lossless=True)
    Image.fromarray(rgb).save(d / "bitmap.bmp")
    Image.fromarray(rgb).save(d / "tiff8.tif")
    imageio.write_image(d / "tiff16.tif", rgb16)
    imageio.write_image(d / "tiff16gray.tif", rgb16[:, :, 0])
    return {
        "rgb8.png": ("RGB", 3, 8), "rgb16.png": ("RGB", 3, 16), "rgba16.png": ("RGBA", 4, 16),
        "la16.png": ("LA", 2, 16), "gray16.png": ("I;16", 1, 16),
        "rgba8.png": ("RGBA", 4, 8), "gray8.png": ("L", 1, 8), "la8.png": ("LA", 2, 8),
        "palette.png": ("RGB", 3, 8), "palette_t.png": ("RGBA", 4, 8),
        "bilevel.png": ("L", 1, 8), "photo.jpg": ("RGB", 3, 8), "grayjpg.jpg": ("L", 1, 8),
        "lossless.webp": ("RGB", 3, 8), "bitmap.bmp": ("RGB", 3, 8),
        "tiff8.tif": ("RGB", 3, 8), "tiff16.tif": ("RGB", 3, 16),
        "tiff16gray.tif": ("I;16", 1, 16),
    }


@pytest.mark.parametrize("task", ["sr", "ds"])
def test_every_input_kind_round_trips(model, shared, tmp_path, task):
    kinds = _kinds(shared, tmp_path)
    jobs, errors = collect_inputs([str(tmp_path / "in")])
    assert not errors and len(jobs) == len(kinds)
    opts = batch.Options(task=task, tau=0.5, seed=1)
    out = tmp_path / "out"
    summary = batch.run_batch(model, ModelIdentity("m", "0" * 64), jobs, opts, out,
                              stream=io.StringIO())
    assert (summary.done, summary.failed) == (len(kinds), 0)
    for name, (mode, channels, depth) in kinds.items():
        stem = name.rsplit(".", 1)[0]
        pattern = f"{stem}_sr_t0.50_s0.png" if task == "sr" else f"{stem}_ds_t0.50_k*.png"
        (path,) = out.glob(pattern)
        src = imageio.read_image(tmp_path / "in" / name)
        got = imageio.read_image(path)
        h, w = src.size
        assert got.size == ((4 * h, 4 * w) if task == "sr" else (-(-h // 4), -(-w // 4))), name
        assert got.bit_depth == depth, name
        assert got.layout == src.layout == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        with Image.open(path) as img:
            assert img.mode == mode or (depth == 16 and channels > 1), (name, img.mode)
        if got.alpha is not None:  # alpha is resized, not sent through the model
            a = src.alpha.astype(np.float64) / (65535 if depth == 16 else 255)
            b = got.alpha.astype(np.float64) / (65535 if depth == 16 else 255)
            assert abs(a.mean() - b.mean()) < 0.02, name


def test_cmyk_jpeg_is_converted_with_a_note(tmp_path):
    Image.new("CMYK", (12, 10), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    img = imageio.read_image(tmp_path / "c.jpg")
    assert img.rgb.shape == (10, 12, 3) and img.layout == "RGB"
    assert img.rgb[..., 0].mean() > 200 and img.rgb[..., 1].mean() < 60  # red stays red
    assert any("CMYK" in n for n in img.notes)


# ---------------------------------------------------------------------------- Python API
def test_api_numpy_kinds_keep_shape_dtype(model):
    rng = np.random.default_rng(0)
    for shape, dtype in [((6, 5), np.uint8), ((6, 5), np.uint16), ((6, 5, 1), np.uint8),
                         ((6, 5, 2), np.uint16), ((6, 5, 3), np.uint8),
                         ((6, 5, 4), np.uint16)]:
        a = rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
        up = sdflow.super_resolve(model, a, tau=0.3, seed=0)
        assert up.dtype == dtype and up.shape == (24, 20, *shape[2:])
        down = sdflow.downscale(model, np.repeat(np.repeat(a, 4, 0), 4, 1), seed=0)
        assert down.dtype == dtype and down.shape == (6, 5, *shape[2:])


def test_api_pil_modes(model):
    rgb = Image.new("RGB", (5, 6), (200, 30, 40))
    assert sdflow.super_resolve(model, rgb, seed=0).mode == "RGB"
    assert sdflow.super_resolve(model, rgb.convert("L"), seed=0).mode == "L"
    assert sdflow.super_resolve(model, rgb.convert("LA"), seed=0).mode == "LA"
    assert sdflow.super_resolve(model, rgb.convert("RGBA"), seed=0).mode == "RGBA"
    assert sdflow.super_resolve(model, rgb.convert("P"), seed=0).mode == "RGB"
    g16 = Image.fromarray(np.full((6, 5), 40000, np.uint16))
    out = sdflow.super_resolve(model, g16, seed=0)
    assert out.mode == "I;16" and out.size == (20, 24)
    many = sdflow.downscale(model, Image.new("RGB", (20, 24)), num_samples=3, seed=0)
    assert isinstance(many, list) and len(many) == 3 and many[0].size == (5, 6)


def test_api_seed_and_generator(model):
    a = np.random.default_rng(1).integers(0, 255, (8, 8, 3)).astype(np.uint8)
    one = sdflow.super_resolve(model, a, tau=0.8, seed=4)
    assert np.array_equal(one, sdflow.super_resolve(model, a, tau=0.8, seed=4))
    assert not np.array_equal(one, sdflow.super_resolve(model, a, tau=0.8, seed=5))
    assert np.array_equal(one, sdflow.super_resolve(model, a, tau=0.8,
                                        generator=torch.Generator().manual_seed(4)))
    # the image API draws the noise exactly as the tensor API does
    t = model.sr(imageio.image_to_tensor(a), tau=0.8, seed=4)
    assert np.array_equal(one, imageio.tensor_to_image(t))
    with pytest.raises(ValueError, match="not both"):
        sdflow.super_resolve(model, a, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="not both"):
        sdflow.downscale(model, a, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="not both"):
        model.downscale(imageio.image_to_tensor(a), seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match="uint8 or uint16"):
        sdflow.super_resolve(model, a.astype(np.float32))
    with pytest.raises(TypeError, match="sdflow.super_resolve"):  # models take tensors
        model.sr(a, seed=1)


def test_atomic_writes_get_normal_permissions_and_leave_nothing_on_failure(tmp_path):
    import os
    import stat

    from sdflow.atomic import write_atomic

    old = os.umask(0o022)
    try:
        out = imageio.write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
        assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not mkstemp's owner-only 0600

        def fail(tmp):
            open(tmp, "wb").write(b"half")
            raise RuntimeError("disk full")

        with pytest.raises(RuntimeError):
            write_atomic(tmp_path / "b.png", fail)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    finally:
        os.umask(old)


def _camera_jpeg(shared, path, orientation: int = 6):
    """A real photo crop saved as a camera would: EXIF Make/Model/DateTime, GPS, and an
    orientation tag (6: rotate 90 degrees clockwise to view)."""
    from PIL import Image

    img = Image.open(shared / "data/RealSR_x4/val/LR/Canon_031.png").convert("RGB")
    img = img.crop((0, 0, 24, 16))
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "EOS 5D Mark III"  # Model
    exif[0x0132] = "2017:03:04 12:34:56"  # DateTime
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)  # GPSLatitudeRef, GPSLatitude
    img.save(path, quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tiff"])
def test_photos_keep_their_exif_with_orientation_normalised(shared, tmp_path, ext, capsys):
    """Camera, date and GPS are copied to every output format that carries EXIF; the pixels
    are upright and tagged orientation 1; --strip-metadata drops it (issue 21, item 3)."""
    from PIL import Image

    from sdflow.cli import main
    from sdflow.models import DAICCV21, DAICCV21Config

    ckpt = tmp_path / "da.safetensors"
    sdflow.save(DAICCV21(DAICCV21Config.preset("tiny")), ckpt)
    src = _camera_jpeg(shared, tmp_path / "camera.jpg")
    for strip in (False, True):
        out = tmp_path / ("stripped" if strip else "kept")
        assert main(["sr", str(src), "-o", str(out), "--model", str(ckpt), "--ext", ext,
                     *(["--strip-metadata"] if strip else [])]) == 0
        name = f"camera_sr.{'tif' if ext == 'tiff' else ext}"
        with Image.open(out / name) as img:
            assert img.size == (16 * 4, 24 * 4)  # upright: the orientation was applied
            exif = img.getexif()
            if strip:
                assert 0x010F not in exif
                continue
            assert exif[0x010F] == "Canon" and exif[0x0110] == "EOS 5D Mark III"
            assert exif[0x0132] == "2017:03:04 12:34:56" and exif[0x0112] == 1
            if ext != "tiff":  # compressed TIFF (libtiff) cannot carry the GPS sub-IFD
                assert exif.get_ifd(0x8825)[1] == "N"
    capsys.readouterr()


def test_reading_leaves_pillows_pixel_limit_as_it_was_also_after_a_refusal(tmp_path):
    """The limit is lifted for a read only (sdflow checks --max-pixels itself), under a
    lock, and restored when the read ends, succeeded or refused."""
    import threading

    from PIL import Image

    from sdflow.imageio import ImageReadError, read_image, write_image

    path = tmp_path / "a.png"
    write_image(path, np.zeros((40, 30, 3), np.uint8))
    before = Image.MAX_IMAGE_PIXELS
    assert read_image(path).rgb.shape == (40, 30, 3)
    assert Image.MAX_IMAGE_PIXELS == before
    with pytest.raises(ImageReadError, match="exceeds the limit of 100 pixels"):
        read_image(path, max_pixels=100)
    assert Image.MAX_IMAGE_PIXELS == before
    errors: list[BaseException] = []

    def read_many():
        try:
            for _ in range(20):
                read_image(path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and Image.MAX_IMAGE_PIXELS == before
