"""Read a user's image file as the RGB picture a person sees, or refuse it with a typed error naming the file.

What a plain ``Image.open(path).convert("RGB")`` gets wrong, and what :func:`read_image` does instead:

* **EXIF orientation**: phone photos are stored sideways with an orientation tag; ``ImageOps.exif_transpose``
  turns them upright.
* **16-bit images** (``I;16`` PNG/TIFF, 32-bit ``I``, float ``F``): Pillow's RGB conversion clips values above 255,
  so a 16-bit grayscale PNG comes out all white. They are scaled from their bit depth to 8 bits.
* **Palette, grayscale, CMYK**: converted through RGBA/RGB; CMYK (and any image with an embedded ICC profile) is
  converted to sRGB through its profile with LittleCMS when one is embedded.
* **Transparency** (RGBA, LA, palette with transparency): composited over mid grey (:data:`ALPHA_BACKGROUND`), not
  dropped (dropping alpha shows whatever colour the transparent pixels happen to hold).
* **Decompression bombs and absurd shapes**: the header's size is checked before any pixel is decoded; more than
  ``max_image_pixels`` or an aspect ratio beyond ``max_aspect`` raises :class:`~semanticface.errors.ImageReadError`.
* **Pixel cap**: larger images are downscaled (aspect kept) to at most ``max_pixels`` before a processor sees them
  (JPEGs are decoded at reduced size via ``draft`` where possible).
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from semanticface.errors import ImageReadError

MAX_IMAGE_PIXELS = 100_000_000  # larger headers are refused as decompression bombs (Pillow's own limit is ~89 M)
MAX_ASPECT = 20.0  # width/height (or height/width) beyond this is not a photo of a face
MAX_PIXELS = 4096 * 4096  # images are downscaled to at most this many pixels before any processor sees them
ALPHA_BACKGROUND = (128, 128, 128)
_HIGH_DEPTH = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}


def read_image(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    max_pixels: int | None = MAX_PIXELS,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    max_aspect: float = MAX_ASPECT,
) -> Image.Image:
    """An upright 8-bit RGB image from a file path or encoded bytes (``name`` labels bytes in errors)."""
    where = name or (str(source) if not isinstance(source, bytes) else "<image bytes>")
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as error:
        raise ImageReadError(f"cannot read the file ({error.strerror or error})", where) from None
    with warnings.catch_warnings():
        # Pillow warns (and above 2x raises) on huge headers; our own check below decides, naming the file.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image: Image.Image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise ImageReadError(f"refused as a decompression bomb ({error})", where) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            raise ImageReadError(f"not a readable image ({error})", where) from None
        width, height = image.size
        check_size(width, height, where, max_image_pixels=max_image_pixels, max_aspect=max_aspect)
        if max_pixels and width * height > max_pixels and image.format == "JPEG":
            scale = math.sqrt(max_pixels / (width * height))
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = to_rgb(image)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise ImageReadError(f"the image data is damaged or truncated ({error})", where) from None
    return cap_pixels(rgb, max_pixels)


def check_size(width: int, height: int, where: str, *, max_image_pixels: int, max_aspect: float) -> None:
    """Refuse empty, bomb-sized or absurdly elongated images before any pixel is decoded."""
    if width < 1 or height < 1:
        raise ImageReadError(f"the image is empty ({width}x{height})", where)
    if width * height > max_image_pixels:
        raise ImageReadError(
            f"{width}x{height} = {width * height:,} pixels is over the limit of {max_image_pixels:,} "
            "(refused as a possible decompression bomb)",
            where,
        )
    aspect = max(width / height, height / width)
    if aspect > max_aspect:
        raise ImageReadError(f"aspect ratio {aspect:.1f}:1 ({width}x{height}) is beyond {max_aspect:g}:1", where)


def cap_pixels(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """Downscale (aspect kept, Lanczos) so the image has at most ``max_pixels`` pixels."""
    width, height = image.size
    if not max_pixels or width * height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (width * height))
    return image.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.Resampling.LANCZOS)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit sRGB from any Pillow mode (see the module docstring for what each mode needs)."""
    mode = image.mode
    if mode == "RGB" and not image.info.get("icc_profile"):
        return image.copy()
    if mode in _HIGH_DEPTH or mode in ("I", "F"):
        return _scale_high_depth(image)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    profile = image.info.get("icc_profile")
    if profile and image.mode in ("RGB", "CMYK", "L"):
        converted = _through_profile(image, profile)
        if converted is not None:
            return converted
    return image.convert("RGB")


def _through_profile(image: Image.Image, profile: bytes) -> Image.Image | None:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None  # a broken profile: fall back to Pillow's plain conversion


def _scale_high_depth(image: Image.Image) -> Image.Image:
    array = np.asarray(image).astype(np.float64)
    if image.mode in _HIGH_DEPTH:
        top = _HIGH_DEPTH[image.mode]
    elif image.mode == "F":
        top = 1.0 if array.size == 0 or np.nanmax(array) <= 1.0 else 255.0
    else:  # "I": 32-bit container, usually holding 16-bit data (older Pillow opens 16-bit PNGs so)
        peak = float(array.max()) if array.size else 0.0
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else float(2**32 - 1)
    grey = np.clip(np.nan_to_num(array) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")
