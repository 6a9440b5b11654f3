"""Decoding one image file (or one array) into the S x S pixels the network gets: Pillow decodes, EXIF
orientation is applied, the mode is brought to grey ('L') or RGB, the shorter side is resized to S and the
centre cropped to S x S (the rule is in read.py's docstring). Files are only read.

Resampling: Pillow's BILINEAR, whose support widens with the reduction factor (an area-aware filter, so a
large downscale does not alias, unlike a plain bilinear lookup); it is torchvision's `Resize` default, so a
model trained here sees what common pipelines feed theirs. LANCZOS is sharper but rings: on strokes on a
flat background (digits, text) its overshoot is clipped to 0 or 255 and leaves halos. `reducing_gap=3`
first shrinks by an integer factor with a box filter when the reduction is over 3x (Pillow's own speed-up,
error well below one grey level), and a JPEG is decoded at 1/2, 1/4 or 1/8 scale (`draft`, the DCT's own
scaling) when it stays at least twice the target: Pillow's `thumbnail` does the same with its default
reducing_gap=2."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger("nnrecipe")

RESAMPLE = Image.Resampling.BILINEAR
REDUCING_GAP = 3.0
DRAFT_GAP = 2  # decode a JPEG no smaller than this many times the target side
# modes whose pixels are one grey level (Pillow's mode list, "Concepts: Modes"); LA: grey with alpha
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# the reasons an unreadable file is given, in the words the audit repeats
NOT_AN_IMAGE = "not an image Pillow can decode"
TRUNCATED = "truncated (the file ends before the image does)"


MISSING = "no such file"


def unreadable_fix(reasons: list[str]) -> str:
    """The fix for files that could not be read: a path that leads nowhere (or to a folder) is a path to
    mend, a file that is no image or is damaged one to export again."""
    paths = sum(r == MISSING or "directory" in r.lower() for r in reasons)
    mend = ("check the paths: a CSV's image paths are read relative to the CSV's folder, with '/' between names "
            "(a Windows path 'imgs\\a.png' is one file name elsewhere)")
    export = "re-export each file (open and save it again as PNG or JPEG) or remove it"
    return mend if paths == len(reasons) else export if not paths else f"{mend}; for the others, {export}"


def open_header(path: str) -> tuple[tuple[int, int], str] | str:
    """((width, height) as displayed, mode) from the file's header alone (Pillow reads lazily), or the reason
    it cannot be read. EXIF orientations 5-8 swap width and height."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            swap = _orientation(img) in (5, 6, 7, 8)
            return ((h, w) if swap else (w, h)), img.mode
    except FileNotFoundError:
        return MISSING
    except UnidentifiedImageError:
        return NOT_AN_IMAGE
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's plugins raise these on damaged headers
        return _reason(e)
    except Image.DecompressionBombError as e:
        return f"too large to decode safely ({e})"


def decode(path: str, side: int) -> np.ndarray | str:
    """The file's pixels resized and centre-cropped to side x side: uint8 (side, side) for a grey image,
    (side, side, 3) for a colour one; or the reason it cannot be decoded. `img.load()` runs inside the try:
    a truncated file opens fine and fails only there (LOAD_TRUNCATED_IMAGES is never set: a half-grey
    image is not data)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.format == "JPEG" and min(w, h) >= 2 * DRAFT_GAP * side:
                short = min(w, h)
                img.draft(img.mode, (-(-w * DRAFT_GAP * side // short), -(-h * DRAFT_GAP * side // short)))
            img.load()
            if _orientation(img) not in (None, 1):
                img = ImageOps.exif_transpose(img)
            return resize_crop(as_grey_or_rgb(img), side)
    except FileNotFoundError:
        return MISSING
    except UnidentifiedImageError:
        return NOT_AN_IMAGE
    except Image.DecompressionBombError as e:
        return f"too large to decode safely ({e})"
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        return _reason(e)


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    if "truncated" in text.lower() or isinstance(e, EOFError):
        return TRUNCATED
    return f"cannot be decoded: {text or type(e).__name__}"


def _orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(0x0112)  # the EXIF Orientation tag
    except Exception:  # a damaged EXIF block: the image itself may still be fine
        return None
    return value if isinstance(value, int) else None


def as_grey_or_rgb(img: Image.Image) -> Image.Image:
    """The image as 'L' (every grey mode: 1-bit, 8/16/32-bit integers and floats scaled to 0-255, grey with
    alpha composited on white) or 'RGB' (RGBA and palette images composited on white, CMYK/YCbCr/LAB/HSV
    converted)."""
    mode = img.mode
    if mode == "L":
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("LA", "La"):
        return _on_white(img.convert("LA"), "L")
    if mode.startswith("I;16") or (mode == "I" and img.format == "PNG"):  # 16 bits a pixel by the file's own
        # depth (a PNG holds at most 16): 65535 is white whatever the image's values, so a dark 16-bit image
        # (values up to 250) stays dark, not read as 8-bit and made bright
        return Image.fromarray(scale_to_uint8(np.clip(np.asarray(img), 0, 65535), sixteen_bit=True))
    if mode in GREY_MODES:  # I, F: scale the values, not clip them
        return Image.fromarray(scale_to_uint8(np.asarray(img)))
    if mode == "RGB":
        return img
    if mode in ("RGBA", "RGBa", "PA", "P"):
        rgba = img.convert("RGBA")  # a palette's transparency becomes alpha here
        return _on_white(rgba, "RGB")
    return img.convert("RGB")


def _on_white(img: Image.Image, mode: str) -> Image.Image:
    """Composite on a white background: the usual page an image with transparency is shown on."""
    background = Image.new(mode, img.size, 255 if mode == "L" else (255, 255, 255))
    background.paste(img.convert(mode), mask=img.getchannel("A"))
    return background


def scale_to_uint8(a: np.ndarray, what: str | None = None, sixteen_bit: bool = False) -> np.ndarray:
    """Integers or floats to 0-255: uint8 as is; values in [0, 1] (floats) times 255; integers within
    0-255 as they are, within 0-65535 (16-bit) divided by 257 (65535 -> 255 exactly); any other range min-max
    scaled (logged when `what` names the array). `sixteen_bit`: integers of a 16-bit file, divided by 257
    whatever their values. Non-finite values are the caller's to refuse."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if not a.size:
        return a.astype(np.uint8)
    lo, hi = float(a.min()), float(a.max())
    if np.issubdtype(a.dtype, np.floating) and lo >= 0 and hi <= 1:
        return np.rint(a.astype(np.float32) * 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) and lo >= 0 and hi <= 255 and not sixteen_bit:
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) and lo >= 0 and hi <= 65535:
        return np.rint(a.astype(np.float32) / 257).astype(np.uint8)
    if what is not None:
        log.info("%s holds values in [%g, %g], not [0, 1] or [0, 255]: scaled to 0-255 from its minimum and "
                 "maximum", what, lo, hi)
    span = hi - lo if hi > lo else 1.0
    return np.rint((a.astype(np.float64) - lo) * (255.0 / span)).astype(np.uint8)


def resize_crop(img: Image.Image, side: int) -> np.ndarray:
    """The shorter side to `side`, the centre cropped to a square, in one resample (`box` selects the source
    square, so the crop costs nothing); an image already side x side is left as it is."""
    w, h = img.size
    if (w, h) != (side, side):
        short = min(w, h)
        left, top = (w - short) / 2, (h - short) / 2
        img = img.resize((side, side), RESAMPLE, box=(left, top, left + short, top + short),
                         reducing_gap=REDUCING_GAP if short > REDUCING_GAP * side else None)
    return np.asarray(img)


def decode_array(image: np.ndarray, side: int) -> np.ndarray:
    """One (H, W) or (H, W, 3) uint8 array resized and cropped like a file's pixels."""
    if image.shape[0] == side and image.shape[1] == side:
        return image
    return resize_crop(Image.fromarray(image), side)
