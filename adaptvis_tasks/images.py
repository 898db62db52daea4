"""Open a benchmark image as an 8-bit RGB ``PIL.Image``, whatever its mode or size.

The reference code does ``Image.open(p).convert('RGB')``; for the common modes (RGB, RGBA, LA, L,
1, P, CMYK) this module does the same. Modes where that conversion would lose the picture are
handled explicitly: 16/32-bit integer greyscale (``I;16*``, ``I``) is scaled from the 16-bit range
to 8 bits (PIL would clip everything above 255 to white), float ``F`` is scaled from [0, 1] (or, if
values exceed 1, from the 16-bit range). Palette images with transparency go through RGBA first
(same colours, no PIL warning). A PNG colour key (``transparency`` of an RGB or L image) is dropped
like an alpha channel: the pixels stay as they are. EXIF orientation is *not* applied, like the
reference.

Size: PIL refuses images above ``Image.MAX_IMAGE_PIXELS`` (~89M pixels: warning; ~179M: error)
as a guard against decompression bombs from untrusted sources. Benchmark images are local files
the user chose to evaluate on, and the model's processor resizes them anyway, so this loader lifts
that limit for its own images; a 10000x10000 image loads, without a DecompressionBombWarning.

Truncation: importing lmms-eval sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` process-wide, which
makes PIL silently pad a truncated file. A damaged benchmark image must not be scored silently, so
this loader decodes with truncation errors on: a truncated file is an ImageLoadError, inside
lmms-eval or not.

Both settings are PIL globals; they are changed only while one of our images is opened and
decoded, under a lock, and restored afterwards.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from adaptvis_tasks.data import IMAGE_ROOT_ENV, ImageLoadError, doctor_hint

_PIL_GLOBALS_LOCK = threading.Lock()


def _decode(path: Path, *, rgb: bool) -> Image.Image:
    """Open and fully decode ``path`` (no size limit, truncation is an error); optionally convert to RGB."""
    with _PIL_GLOBALS_LOCK:
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        try:
            with Image.open(path) as handle:
                handle.load()
                if not rgb:
                    return handle
                image = to_rgb(handle)
                return handle.copy() if image is handle else image
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (see the module docstring for the rules).

    The result never carries a ``transparency`` entry (a PNG colour key survives ``convert("RGB")``
    as an RGB tuple): transformers' image processors composite any image that has one onto white,
    which would change pixels the reference passes through unchanged. ``image`` is not modified.
    """
    rgb = _to_rgb_pixels(image)
    if "transparency" in rgb.info:
        rgb = rgb.copy() if rgb is image else rgb
        del rgb.info["transparency"]
    return rgb


def _to_rgb_pixels(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "F") or mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        values = np.nan_to_num(values, nan=0.0, posinf=65535.0, neginf=0.0)
        if mode == "F" and values.size and values.max() <= 1.0:
            scaled = values * 255.0
        else:
            scaled = values / 257.0  # 65535 -> 255
        grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def open_rgb(path: Path | str, *, what: str = "image") -> Image.Image:
    """Load ``path`` fully and return it in RGB; ImageLoadError naming the file when missing or undecodable.

    ``what`` describes the image in messages (e.g. ``"image of Controlled_A row 17"``).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(
            f"The {what} is missing: {path} does not exist (resolved under {IMAGE_ROOT_ENV}). "
            f"Put the benchmark images there or point {IMAGE_ROOT_ENV} at the right folder. {doctor_hint()}"
        )
    try:
        image = _decode(path, rgb=True)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageLoadError(
            f"The {what} cannot be decoded: {path} ({type(err).__name__}: {err}). Replace the file "
            f"(images are read from {IMAGE_ROOT_ENV}). {doctor_hint()}"
        ) from err
    return image


def check_image(path: Path | str) -> str | None:
    """Why ``path`` is not a usable image (``"missing"`` or ``"corrupt: ..."``), or None when it decodes."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        _decode(path, rgb=False)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return f"corrupt: {type(err).__name__}: {err}"
    return None
