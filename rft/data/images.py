"""Opening a record's images the one way every consumer needs them: fully read, RGB."""

from __future__ import annotations

from PIL import Image


def open_images(paths: list[str]) -> list[Image.Image]:
    """The images at `paths`, decoded into memory as RGB (the files are closed on return)."""
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append(img.convert("RGB"))
    return images
