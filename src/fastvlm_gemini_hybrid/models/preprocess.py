"""Image preparation the way FastVLM was trained: decode, convert to RGB, pad to a square, then resize.

The converted checkpoints ship a CLIP-style image processor that resizes the short side and centre-crops,
which would cut the sides off a wide image (a receipt, a dashboard, a panorama). Apple's training code
instead pads the image to a square with the processor's mean colour (LLaVA's `expand2square`); for FastVLM
the mean is 0, so the padding is black. After padding, the processor's resize and crop are lossless.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from ..errors import BadInputError, ConfigurationError, MediaTooLargeError


def decode_image(data: bytes, name: str | None = None, max_pixels: int | None = None) -> Any:
    """Bytes to an RGB PIL image, or `BadInputError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    label = name or "image"
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max_pixels and img.width * img.height > max_pixels:
                raise MediaTooLargeError(
                    f"{label} has {img.width}x{img.height} pixels, over the limit of {max_pixels}"
                )
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(f"cannot decode {label} as an image: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"{label} is too large to decode safely: {exc}") from None


def fill_colour(image_processor: Any) -> tuple[int, int, int]:
    """The processor's mean colour in 0..255, as Apple's `expand2square` uses it."""
    mean = getattr(image_processor, "image_mean", None) or [0.0, 0.0, 0.0]
    return tuple(round(float(m) * 255) for m in list(mean)[:3])  # type: ignore[return-value]


def pad_to_square(image: Any, fill: tuple[int, int, int]) -> Any:
    """Centre `image` on a square canvas of its longer side; nothing is cropped or distorted."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def preprocessing_key(image_processor: Any) -> str:
    """A short digest of everything that shapes pixel values; part of the vision cache key."""
    try:
        settings = image_processor.to_dict()
    except Exception:  # noqa: BLE001 - any processor without to_dict is keyed by its class
        settings = {"class": type(image_processor).__name__}
    settings = {k: v for k, v in settings.items() if not k.startswith("_")}
    blob = json.dumps({"pad": "square-mean", "processor": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_input_size(size: int, downsampling: int = 64) -> None:
    """`ConfigurationError` unless `size` is a side FastViT-HD takes: a multiple of 64 from 256 to 2048."""
    if size % downsampling or not 4 * downsampling <= size <= 2048:
        raise ConfigurationError(f"vision_input_size must be a multiple of {downsampling} between "
                                 f"{4 * downsampling} and 2048, got {size}")


def set_input_size(image_processor: Any, size: int, downsampling: int = 64) -> int:
    """Make a CLIP-style processor resize and crop to `size` x `size`; returns the image tokens that
    gives (FastViT-HD downsamples by 64: 1024 px = 256 tokens, 768 = 144, 512 = 64). Fewer pixels make
    the vision encoder and the prefill faster, and the model sees less detail than it was trained on."""
    check_input_size(size, downsampling)
    if not hasattr(image_processor, "crop_size"):
        raise ConfigurationError("vision_input_size needs a CLIP-style image processor (size and crop_size)")
    image_processor.size = {"shortest_edge": size}
    image_processor.crop_size = {"height": size, "width": size}
    return (size // downsampling) ** 2
