"""Reading and writing images with explicit bit depth, and converting them to model tensors.

Images are numpy arrays ``H x W x C`` of ``uint8`` (8-bit) or ``uint16`` (16-bit); the bit
depth is carried by the dtype, never guessed from pixel values. Model tensors are float
``[B, C, H, W]`` in [-1, 1].
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from sdflow.errors import SDFlowError

#: Default guard against decompression bombs: 20000 x 20000 pixels.
DEFAULT_MAX_PIXELS = 400_000_000

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class ImageReadError(SDFlowError):
    """An input image cannot be used; the message names the file and what to do."""


@dataclass
class LoadedImage:
    """An image as read from disk: RGB pixels, optional alpha, and what it was."""

    rgb: np.ndarray  # H x W x 3, uint8 or uint16
    alpha: np.ndarray | None  # H x W, same dtype as rgb, or None
    mode: str  # PIL mode of the file ("RGB", "L", "RGBA", "I;16", "P", ...)
    path: Path

    @property
    def bit_depth(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8

    @property
    def is_gray(self) -> bool:
        return self.mode in ("L", "LA", "I", "I;16", "I;16B", "I;16L", "1")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)"""
        return self.rgb.shape[0], self.rgb.shape[1]


def _sixteen_bit(img: Image.Image) -> np.ndarray | None:
    """The pixels of 16-bit single-channel images as uint16, else None."""
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img).astype(np.uint16)
    if img.mode == "I":  # PIL opens 16-bit PNGs as 32-bit "I"
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError("32-bit integer image outside the 16-bit range")
        return arr.astype(np.uint16)
    return None


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as RGB (+ alpha), applying its EXIF orientation.

    Raises :class:`ImageReadError` with the file name and a hint for empty, truncated,
    non-image or oversized files.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes); re-export or remove it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageReadError(
                        f"{path}: {w}x{h} = {w * h:,} pixels exceeds the limit of "
                        f"{max_pixels:,}; raise the limit (--max-pixels) if the file is trusted")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_loaded(img, path)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc}); check the file "
                             "format or remove it") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image ({exc}); re-export it "
                             "from the original") from exc


def _to_loaded(img: Image.Image, path: Path) -> LoadedImage:
    mode = img.mode
    sixteen = _sixteen_bit(img)
    if sixteen is not None:
        if sixteen.ndim != 2:
            raise ValueError(f"unsupported 16-bit layout {sixteen.shape}")
        return LoadedImage(np.repeat(sixteen[:, :, None], 3, axis=2), None, mode, path)
    if mode == "I;16" or mode.startswith("F"):
        raise ValueError(f"unsupported image mode {mode}")
    arr = np.asarray(img)
    if mode in ("RGB", "RGBA") and arr.dtype == np.uint16:  # 16-bit RGB(A) TIFF via PIL
        rgb, alpha = arr[..., :3], (arr[..., 3] if mode == "RGBA" else None)
        return LoadedImage(np.ascontiguousarray(rgb), alpha, mode, path)
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        return LoadedImage(np.ascontiguousarray(rgba[..., :3]),
                           np.ascontiguousarray(rgba[..., 3]), mode, path)
    return LoadedImage(np.asarray(img.convert("RGB")).copy(), None, mode, path)


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
    return t.permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0


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


def write_image(path: str | os.PathLike, arr: np.ndarray, *, overwrite: bool = False,
                pnginfo: dict[str, str] | None = None, quality: int = 95) -> Path:
    """Write ``arr`` (``H x W``, ``H x W x 3`` or ``H x W x 4``; uint8 or uint16) atomically:
    to a temporary name in the same folder, then renamed, so no partial file is left."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    img, params = _to_pil(arr, path.suffix.lower(), pnginfo, quality)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        img.save(tmp, **params)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _to_pil(arr: np.ndarray, suffix: str, pnginfo: dict[str, str] | None,
            quality: int) -> tuple[Image.Image, dict]:
    from PIL import PngImagePlugin

    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix)
    if fmt is None:
        raise ValueError(f"unsupported output format {suffix!r}; use one of {IMAGE_EXTENSIONS}")
    params: dict = {"format": fmt}
    if arr.dtype == np.uint16:
        if fmt not in ("PNG", "TIFF"):
            raise ValueError(f"{fmt} cannot store 16-bit images; write PNG or TIFF")
        if arr.ndim != 2:
            raise ValueError("16-bit output is supported for single-channel images only")
        img = Image.fromarray(arr.astype(np.uint16), mode="I;16")
    else:
        img = Image.fromarray(arr)
    if fmt == "PNG" and pnginfo:
        info = PngImagePlugin.PngInfo()
        for k, v in pnginfo.items():
            info.add_text(k, v)
        params["pnginfo"] = info
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    return img, params
