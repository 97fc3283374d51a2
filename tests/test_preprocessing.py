"""Every image a user might have opens as correct RGB, or is rejected with a reason."""
from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from core.data.preprocessing import DecodeBudget, ImageRejected, decoded_bytes, load_rgb
from core.models import backbones


def saved(image: Image.Image, fmt: str, **options) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    buffer.seek(0)
    return buffer


def test_grayscale_becomes_three_equal_channels():
    rgb = load_rgb(saved(Image.new("L", (8, 8), 77), "PNG"))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (77, 77, 77)


def test_sixteen_bit_is_rescaled_not_clipped():
    values = np.array([[0, 32896, 65535]], dtype=np.uint16).repeat(2, axis=0)
    rgb = load_rgb(saved(Image.fromarray(values), "PNG"))
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_alpha_is_composited_on_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    rgb = load_rgb(saved(image, "PNG"))
    assert rgb.getpixel((1, 1)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (255, 0, 0)


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 0)
    rgb = load_rgb(saved(image, "PNG", transparency=0))
    assert rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((2, 2)) == (0, 0, 255)


def test_cmyk_jpeg_becomes_rgb():
    rgb = load_rgb(saved(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    red, green, blue = rgb.getpixel((4, 4))
    assert rgb.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (30, 10), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 10, 10))  # red on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree turn clockwise
    rgb = load_rgb(saved(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert rgb.size == (10, 30)
    assert rgb.getpixel((5, 3))[0] > 200  # the red block is now on top


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF", "BMP", "PNG", "JPEG"])
def test_every_supported_format_opens(fmt):
    rgb = load_rgb(saved(Image.new("RGB", (12, 12), (10, 200, 10)), fmt))
    assert rgb.mode == "RGB" and rgb.size == (12, 12)
    assert abs(rgb.getpixel((6, 6))[1] - 200) < 12


def test_truncated_image_is_rejected_with_reason():
    data = saved(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG").getvalue()
    with pytest.raises(ImageRejected, match="not a readable image"):
        load_rgb(io.BytesIO(data[: len(data) // 2]))


def test_decompression_bomb_is_rejected(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageRejected, match="decompression-bomb"):
        load_rgb(saved(Image.new("RGB", (20, 20)), "PNG"))


def test_backbone_preprocessing_resizes_and_crops_to_input_size():
    prep = backbones.preprocessing("resnet18")
    tensor = prep.to_uint8(Image.new("RGB", (640, 480), (1, 2, 3)))
    assert tuple(tensor.shape) == (3, 224, 224) and prep.resize_size == 256
    assert backbones.preprocessing("resnet18", 112).resize_size == 128


def test_image_over_the_memory_budget_is_rejected_with_its_size_and_name():
    """A 16-bit 9400x9400 PNG is a 200 KB file but 168 MiB decoded (3 GB once converted before the budget)."""
    big = saved(Image.fromarray(np.zeros((9400, 9400), dtype=np.uint16)), "PNG")
    assert len(big.getvalue()) < 1 << 20
    with pytest.raises(ImageRejected, match=r"'scan\.png': too large \(9400x9400 pixels, I;16: 168 MiB decoded"):
        load_rgb(big, name="scan.png")


def test_decoded_bytes_count_bit_depth_and_bands():
    assert decoded_bytes("L", (100, 100)) == 10_000
    assert decoded_bytes("I;16", (100, 100)) == 20_000
    assert decoded_bytes("RGBA", (100, 100)) == 40_000
    assert decoded_bytes("I", (100, 100)) == 40_000


def test_large_jpeg_decodes_at_reduced_scale_within_the_budget():
    photo = saved(Image.new("RGB", (8000, 6000), (9, 99, 199)), "JPEG", quality=50)  # 137 MiB at full size
    with pytest.raises(ImageRejected, match="too large"):
        load_rgb(io.BytesIO(photo.getvalue()))
    small = load_rgb(io.BytesIO(photo.getvalue()), min_size=256)
    assert min(small.size) >= 256 and small.size[0] <= 1000


def test_eight_bit_values_stored_in_a_wide_mode_are_kept_not_stretched():
    values = np.array([[10, 20, 30]], dtype=np.int32).repeat(2, axis=0)
    rgb = load_rgb(saved(Image.fromarray(values, "I"), "TIFF"))
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == [10, 20, 30]


def test_decode_budget_never_lets_reservations_exceed_capacity():
    budget, peak, lock = DecodeBudget(100), [0], threading.Lock()

    def decode(cost: int) -> None:
        with budget.reserve(cost):
            with lock:
                peak[0] = max(peak[0], budget.in_use)
            time.sleep(0.01)

    threads = [threading.Thread(target=decode, args=(cost,)) for cost in [60, 60, 30, 30, 90, 150, 10] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert budget.in_use == 0 and 100 <= peak[0] <= 150  # 150 ran alone; nothing else ever passed 100
