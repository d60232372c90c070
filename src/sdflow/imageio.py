"""Reading and writing images with explicit bit depth, and converting them to model tensors.

Images are numpy arrays ``H x W x C`` of ``uint8`` (8-bit) or ``uint16`` (16-bit); the bit
depth is carried by the dtype, never guessed from pixel values. Model tensors are float
``[B, C, H, W]`` in [-1, 1].

Every input kind becomes a :class:`LoadedImage` (RGB pixels, optional alpha, what the
source was): files (:func:`read_image`), PIL images (:func:`from_pil`) and numpy arrays
(:func:`from_array`). :func:`compose` turns model output back into the layout of the
source (gray stays gray, alpha is re-attached, same bit depth), :func:`to_pil` /
:func:`write_image` hand it out. 16-bit PNGs go through ``imagecodecs`` (libpng) and
16-bit colour TIFFs through ``tifffile``, because Pillow reduces both to 8 bits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import threading
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from sdflow.atomic import write_atomic
from sdflow.errors import SDFlowError
from sdflow.value_range import to_signed, to_unit

#: Default guard against decompression bombs: 20000 x 20000 pixels.
DEFAULT_MAX_PIXELS = 400_000_000

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

#: Output formats: name -> file extension.
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}
#: Formats that store 16 bits per channel / an alpha channel / text metadata.
SIXTEEN_BIT_FORMATS = ("png", "tiff")
ALPHA_FORMATS = ("png", "webp", "tiff")
TEXT_FORMATS = ("png",)

GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L")
#: ITU-R BT.601 luma weights (what Pillow's ``convert("L")`` uses).
LUMA = (0.299, 0.587, 0.114)


class ImageReadError(SDFlowError):
    """An input image cannot be used; the message names the file and what to do."""


@dataclass
class LoadedImage:
    """An image as read: RGB pixels, optional alpha, and what the source was.

    ``mode`` is the source's PIL mode ("RGB", "L", "RGBA", "LA", "I;16", "P", "CMYK", ...;
    for arrays "L", "LA", "RGB" or "RGBA" from the channel count). ``kind`` is "file",
    "pil" or "array"; ``array_shape`` keeps an array's exact shape so that ``H x W`` and
    ``H x W x 1`` come back as they went in. ``notes`` lists conversions made on reading
    (e.g. CMYK to RGB).
    """

    rgb: np.ndarray  # H x W x 3, uint8 or uint16
    alpha: np.ndarray | None  # H x W, same dtype as rgb, or None
    mode: str
    path: Path | None
    icc_profile: bytes | None = None
    #: the source's EXIF (camera, date, GPS ...) for the outputs: orientation set to 1
    #: (the pixels are already upright) and the original pixel size dropped
    exif: bytes | None = None
    kind: str = "file"
    array_shape: tuple[int, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def bit_depth(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8

    @property
    def is_gray(self) -> bool:
        return self.mode in GRAY_MODES

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)"""
        return self.rgb.shape[0], self.rgb.shape[1]

    @property
    def layout(self) -> str:
        """Channel layout of the output that matches this source: L, LA, RGB or RGBA."""
        base = "L" if self.is_gray else "RGB"
        return base + "A" if self.alpha is not None else base

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else f"<{self.kind}>"


# ---------------------------------------------------------------------------- reading
#: Held while Pillow's module-level pixel limit is lifted (threads reading images at once,
#: e.g. the demo's, must not restore each other's value halfway).
_PIXEL_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def _pixel_limit(max_pixels: int):
    """Pillow's own decompression-bomb guard is switched off while a file is read:
    :func:`read_image` checks the size against ``max_pixels`` itself before decoding
    (Pillow decodes lazily), so the user gets one message with the size and the option.
    Pillow has no per-call limit and checks again while decoding (TIFF tiles, crops), so
    its module-level one is lifted for the whole read, under a lock, and always restored."""
    with _PIXEL_LIMIT_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _too_big(path: Path, w: int | None, h: int | None, max_pixels: int) -> ImageReadError:
    size = f"{w}x{h} = {w * h:,} pixels" if w and h else "the image"
    return ImageReadError(
        f"{path}: {size} exceeds the limit of {max_pixels:,} pixels; raise the limit "
        "(--max-pixels) if the file is trusted")


#: Bytes per pixel that reading an image and converting it for a model hold at once: the
#: decoded pixels (up to 8: 16-bit RGBA), a float32 RGB copy (12) and the output's (12).
DECODE_BYTES_PER_PIXEL = 32


def _refuse_beyond_memory(path: Path, w: int, h: int) -> None:
    """Refuse, before decoding, an image whose decoding and conversion alone would need more
    memory than is available (a header can claim any size; the pixel limit is a policy,
    this is what the machine can do)."""
    from sdflow.hardware import available_ram

    need = w * h * DECODE_BYTES_PER_PIXEL
    available = available_ram()
    if available is not None and need > available:
        raise ImageReadError(f"{path}: {w}x{h} pixels need about {need / 2**30:.1f} GiB to "
                             f"decode and convert, more than the {available / 2**30:.1f} GiB "
                             "available; downscale or crop it first, or free memory")


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as RGB (+ alpha), applying its EXIF orientation.

    8-bit images of any mode (RGB, L, LA, RGBA, P, 1, CMYK) are read by Pillow; 16-bit
    gray, gray+alpha, RGB and RGBA PNGs and TIFFs come back as uint16. Raises
    :class:`ImageReadError` with the file name and a hint for missing, empty, truncated,
    non-image or oversized files.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: {why_not_a_file(path)}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes); re-export or remove it")
    try:
        with _pixel_limit(max_pixels), Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise _too_big(path, w, h, max_pixels)
            _refuse_beyond_memory(path, w, h)
            orientation = _orientation(img)
            exif = output_exif(img)
            sixteen = _read_sixteen_bit_colour(img, path, max_pixels)
            if sixteen is not None:
                return replace(sixteen, rgb=_orient(sixteen.rgb, orientation),
                               alpha=None if sixteen.alpha is None
                               else _orient(sixteen.alpha, orientation), exif=exif)
            frames = int(getattr(img, "n_frames", 1) or 1)
            img.load()
            img = ImageOps.exif_transpose(img)
            loaded = replace(_from_pil(img, path, "file"), exif=exif)
            if frames > 1:
                loaded = replace(loaded, notes=loaded.notes + (
                    f"{frames} frames (animated or multi-page): only the first is used; "
                    "extract the others to process them",))
            return loaded
    except ImageReadError:
        raise
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; fix the file's permissions") \
            from exc
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in (".tif", ".tiff"):  # e.g. 16-bit gray+alpha: not in Pillow
            with contextlib.suppress(Exception):
                return _read_tiff16(path, None, max_pixels, orient=True)
        raise ImageReadError(f"{path}: not a readable image ({exc}); check the file "
                             "format or remove it") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image ({exc}); re-export it "
                             "from the original") from exc


def why_not_a_file(path: str | os.PathLike) -> str:
    """Why ``path`` is not a readable regular file, in words (for one-line errors)."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop; fix the link or give the file it should point to"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied; fix its permissions or those of its folder"
        if os.path.islink(path):
            return f"a broken symbolic link (to {os.readlink(path)}); fix or remove it"
        return "no such file or folder"
    if os.path.isdir(path):
        return "a folder, not a file"
    return "not a regular file (a device, socket or pipe); give an image file"


def output_exif(img: Image.Image) -> bytes | None:
    """The EXIF block of ``img`` as outputs should carry it: every tag kept (camera, date,
    GPS, ...) except that the orientation is normalised to 1 (the pixels are read upright)
    and the original pixel dimensions are dropped. None without EXIF or if it is broken."""
    try:
        if not img.getexif():
            return None
        exif = Image.Exif()  # a copy: the image's own EXIF still drives its orientation
        exif.load(img.getexif().tobytes())
        exif[0x0112] = 1  # Orientation: normal (tagged as such)
        if 0x8769 in exif:  # (get_ifd would add an empty Exif IFD otherwise)
            exif_ifd = exif.get_ifd(0x8769)
            for tag in (0xA002, 0xA003):  # PixelX/YDimension of the original
                exif_ifd.pop(tag, None)
        return exif.tobytes()
    except Exception:  # a broken EXIF block is dropped, never fatal
        return None


def _tiff_exif(exif: bytes) -> bytes:
    """EXIF as compressed TIFF can carry it: libtiff cannot write the pointers to the Exif
    and GPS sub-IFDs, so TIFF outputs keep the main tags (camera make and model, date,
    software, orientation...) but not exposure details or the location."""
    tags = Image.Exif()
    tags.load(exif)
    if 0x8769 not in tags and 0x8825 not in tags:
        return exif
    tags.pop(0x8769, None)
    tags.pop(0x8825, None)
    return tags.tobytes()


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block should not make the image unreadable
        return 1


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an ``H x W (x C)`` array, as
    ``ImageOps.exif_transpose`` does for PIL images."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return arr if op is None else np.ascontiguousarray(op(arr))


def _read_sixteen_bit_colour(img: Image.Image, path: Path,
                             max_pixels: int) -> LoadedImage | None:
    """16-bit PNGs (all colour types) and 16-bit multi-channel TIFFs, which Pillow would
    reduce to 8 bits; None for everything Pillow reads faithfully."""
    if img.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(_IHDR_END)
        if _png_bit_depth(head) != 16:
            return None
        px = decode_png16(path.read_bytes())
        px = px[:, :, None] if px.ndim == 2 else px
        channels = px.shape[2]
        mode = {1: "I;16", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        rgb = px[:, :, :1].repeat(3, axis=2) if channels <= 2 else px[:, :, :3]
        alpha = np.ascontiguousarray(px[:, :, -1]) if channels in (2, 4) else None
        # Pillow has parsed the iCCP chunk (it precedes the image data) on opening
        return LoadedImage(np.ascontiguousarray(rgb), alpha, mode, path,
                           icc_profile=img.info.get("icc_profile"))
    if img.format == "TIFF":
        tags = getattr(img, "tag_v2", {})
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        if max(bits) != 16 or int(tags.get(277, 1)) < 2:
            return None  # 8-bit, or 16-bit gray (Pillow reads it as I;16)
        return _read_tiff16(path, img.info.get("icc_profile"), max_pixels)
    return None


def _read_tiff16(path: Path, icc: bytes | None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 orient: bool = False) -> LoadedImage:
    """16-bit TIFF with 2 to 4 samples per pixel, via tifffile (EXIF orientation applied
    here only with ``orient``: the Pillow path applies it itself)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.imagewidth * page.imagelength > max_pixels:
                raise _too_big(path, page.imagewidth, page.imagelength, max_pixels)
            _refuse_beyond_memory(path, page.imagewidth, page.imagelength)
            arr = page.asarray()
            axes = page.axes
            orientation = int(page.tags[274].value) if 274 in page.tags else 1
    except ValueError as exc:
        if "imagecodecs" in str(exc):
            raise ImageReadError(
                f"{path}: 16-bit TIFF with a compression that the installed 'imagecodecs' "
                "cannot decode (pip install -U imagecodecs), or re-save it uncompressed, "
                "deflate-compressed or as 16-bit PNG") from exc
        raise
    if axes.startswith("S"):  # planar configuration: samples first
        arr = np.moveaxis(arr, 0, -1)
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (2, 3, 4):
        raise ValueError(f"unsupported 16-bit TIFF layout {arr.shape} {arr.dtype}")
    channels = arr.shape[2]
    mode = {2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    rgb = arr[:, :, :1].repeat(3, axis=2) if channels == 2 else arr[:, :, :3]
    alpha = arr[:, :, -1] if channels in (2, 4) else None
    if orient:
        rgb = _orient(rgb, orientation)
        alpha = None if alpha is None else _orient(alpha, orientation)
    return LoadedImage(np.ascontiguousarray(rgb), alpha, mode, path, icc_profile=icc)


def _sixteen_bit_gray(img: Image.Image) -> np.ndarray | None:
    """The pixels of 16-bit single-channel images as uint16, else None."""
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img).astype(np.uint16)
    if img.mode == "I":  # 32-bit integer: accepted when it holds 16-bit values
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError("32-bit integer image outside the 16-bit range")
        return arr.astype(np.uint16)
    return None


def _cmyk_to_rgb(img: Image.Image) -> tuple[Image.Image, str]:
    icc = img.info.get("icc_profile")
    if icc:
        try:
            import io

            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"),
                                            outputMode="RGB")
            return rgb, "CMYK converted to sRGB with its embedded ICC profile"
        except Exception:  # a broken profile: fall back to the plain conversion
            pass
    return img.convert("RGB"), ("CMYK converted to RGB without colour management (no "
                                "usable ICC profile); convert it to RGB yourself for exact "
                                "colours")


def _from_pil(img: Image.Image, path: Path | None, kind: str) -> LoadedImage:
    mode = img.mode
    icc = img.info.get("icc_profile")
    sixteen = _sixteen_bit_gray(img)
    if sixteen is not None:
        if sixteen.ndim != 2:
            raise ValueError(f"unsupported 16-bit layout {sixteen.shape}")
        return LoadedImage(np.repeat(sixteen[:, :, None], 3, axis=2), None, mode, path,
                           icc_profile=icc, kind=kind)
    if mode.startswith("I;16") or mode.startswith("F") or mode == "I":
        raise ValueError(f"unsupported image mode {mode} (floating point or signed); "
                         "convert it to 8- or 16-bit")
    if mode == "CMYK":
        img, note = _cmyk_to_rgb(img)
        return LoadedImage(np.asarray(img).copy(), None, mode, path, kind=kind,
                           notes=(note,))
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        mode == "P" and "transparency" in img.info) or (
        mode in ("L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        return LoadedImage(np.ascontiguousarray(rgba[..., :3]),
                           np.ascontiguousarray(rgba[..., 3]), mode, path, icc_profile=icc,
                           kind=kind)
    try:
        rgb = np.asarray(img.convert("RGB")).copy()
    except ValueError as exc:
        raise ValueError(f"unsupported image mode {mode} ({exc})") from exc
    return LoadedImage(rgb, None, mode, path, icc_profile=icc, kind=kind)


def from_pil(img: Image.Image) -> LoadedImage:
    """A PIL image as a :class:`LoadedImage` (no EXIF transpose: the object is taken as
    it is). 16-bit gray (``I;16``, ``I``) stays 16-bit."""
    return _from_pil(img, None, "pil")


def from_array(arr: np.ndarray) -> LoadedImage:
    """A uint8/uint16 array ``H x W`` (gray), ``H x W x 1`` (gray), ``x 2`` (gray+alpha),
    ``x 3`` (RGB) or ``x 4`` (RGBA) as a :class:`LoadedImage`. The bit depth is the
    dtype."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected a numpy array or PIL image, got {type(arr).__name__}")
    if arr.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image arrays must be uint8 or uint16, got {arr.dtype}; the bit "
                        "depth is taken from the dtype, never guessed from the values")
    a = arr[:, :, None] if arr.ndim == 2 else arr
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image arrays must be H x W or H x W x C with C in 1..4, got "
                         f"shape {arr.shape}")
    c = a.shape[2]
    rgb = a[:, :, :1].repeat(3, axis=2) if c <= 2 else a[:, :, :3]
    alpha = a[:, :, -1] if c in (2, 4) else None
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    return LoadedImage(np.ascontiguousarray(rgb), None if alpha is None
                       else np.ascontiguousarray(alpha), mode, None, kind="array",
                       array_shape=tuple(arr.shape))


# ---------------------------------------------------------------------------- tensors
def to_uint8(arr: np.ndarray) -> np.ndarray:
    """An 8- or 16-bit array as 8 bits (16-bit values rounded: v / 257)."""
    if arr.dtype == np.uint8:
        return arr
    return np.round(arr.astype(np.float32) / 257.0).astype(np.uint8)


def image_to_tensor(rgb: np.ndarray) -> Tensor:
    """``H x W x C`` uint8/uint16 array -> ``[1, C, H, W]`` float32 in [-1, 1]."""
    if rgb.dtype == np.uint8:
        peak = 255.0
    elif rgb.dtype == np.uint16:
        peak = 65535.0
    else:
        raise TypeError(f"images must be uint8 or uint16 arrays, got {rgb.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(rgb).astype(np.float32) / peak)
    if t.ndim == 2:
        t = t[:, :, None]
    return to_signed(t.permute(2, 0, 1).unsqueeze(0))


def tensor_to_image(t: Tensor, bit_depth: int = 8) -> np.ndarray:
    """``[C, H, W]`` or ``[1, C, H, W]`` tensor in [-1, 1] -> ``H x W x C`` array, rounded
    (not truncated) to ``bit_depth`` bits."""
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    peak = {8: 255.0, 16: 65535.0}[bit_depth]
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1.0) * (peak / 2.0)).round()
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return arr.permute(1, 2, 0).numpy().astype(dtype)


def to_gray(rgb: Tensor) -> Tensor:
    """``[..., 3, H, W]`` -> ``[..., 1, H, W]`` with the BT.601 luma weights."""
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * w).sum(dim=-3, keepdim=True)


def compose(rgb: Tensor, alpha: Tensor | None, like: LoadedImage,
            bit_depth: int | None = None) -> np.ndarray:
    """Model output ``[3, H, W]`` (in [-1, 1]) plus an optional alpha ``[H, W]`` (in
    [0, 1]) -> an array in the layout of ``like``: gray sources give gray (BT.601 luma),
    alpha is appended, rounded to ``bit_depth`` (default: the source's). Arrays come back
    ``H x W`` if the source array was ``H x W``."""
    bit_depth = bit_depth or like.bit_depth
    peak = 65535.0 if bit_depth == 16 else 255.0
    x = to_unit(rgb.detach().float().cpu().clamp(-1, 1))
    if like.is_gray:
        x = to_gray(x)
    if alpha is not None:
        x = torch.cat([x, alpha.detach().float().cpu().clamp(0, 1)[None]], dim=0)
    arr = (x * peak).round().permute(1, 2, 0).numpy()
    arr = arr.astype(np.uint16 if bit_depth == 16 else np.uint8)
    if arr.shape[2] == 1 and not (like.kind == "array" and like.array_shape is not None
                                  and len(like.array_shape) == 3):
        arr = arr[:, :, 0]
    return arr


def to_pil(arr: np.ndarray, like: LoadedImage | None = None) -> Image.Image:
    """An output array as a PIL image: ``L``/``LA``/``RGB``/``RGBA`` for 8 bits, ``I;16``
    for 16-bit gray (``I`` if the source image was ``I``). Pillow has no 16-bit colour
    modes, so 16-bit colour arrays are refused."""
    a = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    if a.dtype == np.uint16:
        if a.ndim != 2:
            raise ValueError("PIL cannot hold 16-bit colour images; use numpy arrays")
        if like is not None and like.mode == "I":
            return Image.fromarray(a.astype(np.int32))  # mode I
        return Image.fromarray(np.ascontiguousarray(a))  # mode I;16
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise ValueError(f"cannot make a PIL image of shape {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(a))  # L, LA, RGB or RGBA


# ---------------------------------------------------------------------------- writing
def _atomic(path: Path, overwrite: bool, write) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass --overwrite to replace it")
    return write_atomic(path, write)


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` atomically (temporary name in the same folder, then renamed)."""
    return _atomic(Path(path), overwrite, lambda tmp: Path(tmp).write_bytes(data))


def format_of(path: str | os.PathLike) -> str:
    """Output format name of a file name: png, jpg, webp, tiff or bmp."""
    suffix = Path(path).suffix.lower()
    fmt = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".bmp": "bmp",
           ".tif": "tiff", ".tiff": "tiff"}.get(suffix)
    if fmt is None:
        raise ValueError(f"unsupported output format {suffix!r}; use one of "
                         f"{IMAGE_EXTENSIONS}")
    return fmt


def write_image(path: str | os.PathLike, arr: np.ndarray, *, overwrite: bool = False,
                pnginfo: dict[str, str] | None = None, quality: int = 95,
                icc_profile: bytes | None = None, exif: bytes | None = None) -> Path:
    """Write ``arr`` (``H x W``, ``H x W x 1..4``; uint8 or uint16) atomically: to a
    temporary name in the same folder, then renamed, so no partial file is left.

    16 bits are kept in PNG and TIFF (other formats raise); ``pnginfo`` becomes PNG text
    chunks; ``icc_profile`` is embedded where the format allows, and so is ``exif`` (8-bit
    PNG, JPEG, WebP and TIFF, TIFF without the Exif and GPS sub-IFDs; not yet in 16-bit
    outputs).
    """
    path = Path(path)
    fmt = format_of(path)
    a = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    if a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"images must be uint8 or uint16 arrays, got {a.dtype}")
    channels = 1 if a.ndim == 2 else a.shape[2]
    if channels in (2, 4) and fmt not in ALPHA_FORMATS:
        raise ValueError(f"{fmt} cannot store an alpha channel; write PNG, WebP or TIFF")
    if a.dtype == np.uint16:
        if fmt not in SIXTEEN_BIT_FORMATS:
            raise ValueError(f"{fmt} cannot store 16-bit images; write PNG or TIFF")
        if fmt == "png":
            data = encode_png16(a, pnginfo, icc_profile)
            return _atomic(path, overwrite, lambda tmp: Path(tmp).write_bytes(data))
        return _atomic(path, overwrite, lambda tmp: _write_tiff16(tmp, a, icc_profile))
    img = Image.fromarray(a)
    params: dict = {"format": {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF",
                               "bmp": "BMP"}[fmt]}
    if fmt == "webp" and img.mode == "LA":
        img = img.convert("RGBA")
    if fmt == "png" and pnginfo:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for k, v in pnginfo.items():
            info.add_itxt(k, v) if not v.isascii() else info.add_text(k, v)
        params["pnginfo"] = info
    if fmt in ("jpg", "webp"):
        params["quality"] = quality
    if fmt == "tiff":
        params["compression"] = "tiff_adobe_deflate"
    if icc_profile and fmt != "bmp":
        params["icc_profile"] = icc_profile
    if exif and fmt != "bmp":  # PNG eXIf chunk, JPEG APP1, WebP EXIF, TIFF EXIF IFD
        params["exif"] = _tiff_exif(exif) if fmt == "tiff" else exif
    return _atomic(path, overwrite, lambda tmp: img.save(tmp, **params))


def _write_tiff16(tmp: str, a: np.ndarray, icc: bytes | None) -> None:
    import tifffile

    channels = 1 if a.ndim == 2 else a.shape[2]
    photometric = "minisblack" if channels <= 2 else "rgb"
    extras = {"extrasamples": (2,)} if channels in (2, 4) else {}  # unassociated alpha
    tifffile.imwrite(tmp, a, photometric=photometric, compression="zlib",
                     iccprofile=icc, **extras)


# ---------------------------------------------------------------------------- 16-bit PNG
# Pixels: ``imagecodecs`` (libpng), since Pillow reduces 16-bit colour PNGs to 8 bits.
# Metadata: imagecodecs neither writes nor returns PNG text or ICC chunks, and Pillow cannot
# write a 16-bit colour image at all, so the encoder below inserts tEXt/iTXt/iCCP chunks
# (length, type, body, CRC: a fixed layout) right after the IHDR that libpng wrote. On
# reading, Pillow parses those chunks when it opens the file (``img.text``,
# ``img.info["icc_profile"]``; see :func:`sdflow.inference.metadata.read_metadata`), so only the
# pixels come from imagecodecs.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: signature (8) + IHDR length, type, 13-byte body and CRC (25): IHDR is always first
_IHDR_END = 33


def _png_bit_depth(head: bytes) -> int:
    """The bit depth in the IHDR of PNG bytes (only the first 33 are needed)."""
    if len(head) < _IHDR_END or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file (no IHDR chunk at the start)")
    return head[24]


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + ctype + body
            + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF))


def _png_text_chunk(key: str, value: str) -> bytes:
    """tEXt (Latin-1) when the value fits, else uncompressed iTXt (UTF-8), as Pillow's
    ``PngInfo.add_text`` does for 8-bit PNGs. Keywords are Latin-1, 1 to 79 bytes."""
    k = key.encode("latin-1")[:79]
    try:
        return _png_chunk(b"tEXt", k + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        # keyword, NUL, compression flag 0, method 0, empty language tag and translated
        # keyword (each NUL-terminated), then the text
        return _png_chunk(b"iTXt", k + b"\0\0\0\0\0" + value.encode("utf-8"))


def encode_png16(pixels: np.ndarray, text: dict[str, str] | None = None,
                 icc_profile: bytes | None = None) -> bytes:
    """PNG bytes of a uint16 image ``H x W`` or ``H x W x C`` (C = 1..4) with ``text`` as
    text chunks and an optional ICC profile (iCCP)."""
    import imagecodecs

    if pixels.dtype != np.uint16:
        raise TypeError(f"expected uint16 pixels, got {pixels.dtype}")
    a = pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))) or 0 in a.shape:
        raise ValueError(f"cannot write a {pixels.shape} image as PNG")
    data = bytes(imagecodecs.png_encode(np.ascontiguousarray(a), level=6))
    if data[8:16] != b"\0\0\0\rIHDR":  # libpng writes IHDR first; guard the offset anyway
        raise RuntimeError("unexpected PNG layout from imagecodecs (IHDR not first)")
    extra = []
    if icc_profile:
        extra.append(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))
    extra += [_png_text_chunk(k, v) for k, v in (text or {}).items()]
    return data[:_IHDR_END] + b"".join(extra) + data[_IHDR_END:]


def decode_png16(data: bytes) -> np.ndarray:
    """The pixels of a 16-bit PNG: ``H x W`` (gray) or ``H x W x C`` (C = 2..4) uint16;
    interlaced files and ``tRNS`` colour keys (which become an alpha channel) included.
    Raises ValueError for corrupt or truncated data."""
    import imagecodecs

    try:
        px = imagecodecs.png_decode(data)
    except imagecodecs.PngError as exc:
        raise ValueError(f"PNG decoder: {exc}") from exc
    except UnicodeDecodeError as exc:  # libpng's message on some damaged headers
        raise ValueError("PNG decoder: damaged chunk structure") from exc
    if px.dtype != np.uint16:
        raise ValueError(f"expected a 16-bit PNG, decoded {px.dtype}")
    return px
