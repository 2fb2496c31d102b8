"""Thumbnails: for every new JPEG or PNG, a small watermarked copy and a metadata file.

Runs under s3-event-bridge with the group prefix ``""`` and ``PULL_SCOPE=events`` (see
thumbnails.env): an upload ``<key>`` is pulled to ``$ROOT_FOLDER/<key>`` and this handler
writes

- ``thumbnails/<key>``: at most ``THUMBNAIL_MAX_WIDTH`` (default 200) pixels wide, aspect
  ratio kept (never enlarged), a small text watermark (``WATERMARK_TEXT``) in the bottom
  right corner drawn with Pillow's default font, in the original's format;
- ``metadata/<key>.json``: the original's ``width``, ``height``, ``format`` and ``bytes``,
  plus the ``source`` key and the thumbnail's size.

The bridge uploads them to the same keys at the top of TARGET_BUCKET (``photo.jpg`` ->
``thumbnails/photo.jpg``). Only the files named in ``$BRIDGE_EVENTS_FILE`` are processed
(the only ones pulled, in events scope). A file
that is not a JPEG or PNG image (corrupt, truncated, another format under a .jpg name,
absurdly large) is skipped with a log line rather than failing the run: retrying would
not fix it, and failing would also hold back the real images grouped with it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path, PurePosixPath

from PIL import ExifTags, Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

FORMATS = {"JPEG", "PNG"}
MAX_WIDTH = int(os.environ.get("THUMBNAIL_MAX_WIDTH", "200"))
WATERMARK = os.environ.get("WATERMARK_TEXT", "s3-event-bridge")


class NotAnImage(Exception):
    """The file cannot be made into a thumbnail; the message says why."""


def thumbnail_size(width: int, height: int, max_width: int = MAX_WIDTH) -> tuple[int, int]:
    """At most ``max_width`` wide, same aspect ratio, never enlarged, never 0."""
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


def _normalise_mode(image: Image.Image, image_format: str) -> Image.Image:
    """A mode that resizes smoothly, takes a drawn watermark and saves in ``image_format``."""
    if image.mode in ("RGB", "L") or (image.mode == "RGBA" and image_format == "PNG"):
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if image_format == "PNG" and has_alpha:
        return image.convert("RGBA")
    return image.convert("RGB")  # CMYK or YCbCr JPEG, palette PNG, 16-bit PNG, ...


def _watermark(image: Image.Image) -> None:
    """Draw ``WATERMARK`` in the bottom right corner: white, with a dark shadow to stay legible."""
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), WATERMARK, font=font)
    x = max(0, image.width - (right - left) - 4) - left
    y = max(0, image.height - (bottom - top) - 4) - top
    draw.text((x + 1, y + 1), WATERMARK, fill="black", font=font)
    draw.text((x, y), WATERMARK, fill="white", font=font)


def make_thumbnail(source: Path, target: Path) -> dict[str, object]:
    """Write the thumbnail of ``source`` to ``target``; return the original's metadata."""
    try:
        with Image.open(source) as image:
            # Multi-picture JPEGs (many phone cameras) open as MPO: their first frame is JPEG.
            image_format = "JPEG" if image.format == "MPO" else (image.format or "unknown")
            if image_format not in FORMATS:
                raise NotAnImage(f"format {image_format} is not JPEG or PNG")
            width, height = image.size
            # Photos stored sideways carry an EXIF orientation: the thumbnail is made upright.
            sideways = image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
            size = thumbnail_size(*((height, width) if sideways else (width, height)))
            if image_format == "JPEG":  # decode a big JPEG at 1/2, 1/4 or 1/8 of its size
                image.draft(None, (size[1], size[0]) if sideways else size)
            upright = ImageOps.exif_transpose(_normalise_mode(image, image_format))
            small = upright.resize(size, Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise NotAnImage(str(exc)) from exc
    _watermark(small)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 85} if image_format == "JPEG" else {"optimize": True}
    small.save(target, format=image_format, **options)
    return {
        "width": width,
        "height": height,
        "format": image_format,
        "bytes": source.stat().st_size,
        "thumbnail": {"width": small.width, "height": small.height},
    }


def main() -> int:
    root = Path(os.environ["ROOT_FOLDER"])
    events = json.loads(Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text(encoding="utf-8"))
    for event in events:
        if event["path"] is None:  # not pulled (deleted since, or filtered out)
            print(f"skipping {event['key']}: not pulled", file=sys.stderr)
            continue
        path = PurePosixPath(event["path"])
        if path.parts[0] in ("thumbnails", "metadata"):  # this handler's own outputs
            continue
        try:
            metadata = make_thumbnail(root / path, root / "thumbnails" / path)
        except NotAnImage as exc:
            print(f"skipping {event['key']}: not a usable image: {exc}", file=sys.stderr)
            continue
        metadata["source"] = event["key"]
        target = root / "metadata" / path.parent / f"{path.name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(metadata, sort_keys=True, indent=1) + "\n", encoding="utf-8")
        thumb = metadata["thumbnail"]
        print(f"thumbnail of {event['key']}: {thumb} ({metadata['format']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
