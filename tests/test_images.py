"""Reading a user's image files: orientation, bit depth, colour modes, refused files (semanticface.images)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from semanticface.errors import DatasetError, ImageReadError
from semanticface.images import ALPHA_BACKGROUND, read_image


def _pattern(width: int = 60, height: int = 40) -> Image.Image:
    """Left half red, right half blue, a green bar along the top: any rotation or flip shows."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (220, 30, 30)
    array[:, width // 2 :] = (30, 30, 220)
    array[:5] = (30, 200, 30)
    return Image.fromarray(array)


def test_exif_orientation_is_applied(tmp_path):
    upright = _pattern()
    # Stored rotated 90 degrees counter-clockwise; orientation 6 says "rotate 90 clockwise to display".
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    assert Image.open(path).size == (40, 60)  # what a plain open sees: sideways
    image = read_image(path)
    assert image.size == (60, 40) and image.mode == "RGB"
    assert np.abs(np.asarray(image, int) - np.asarray(upright, int)).mean() < 8


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    path = tmp_path / "depth16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    assert (np.asarray(Image.open(path).convert("RGB")) == 255).mean() > 0.95  # the bug: Pillow clips to white
    image = np.asarray(read_image(path), int)
    assert image[0, 0].tolist() == [0, 0, 0] and image[0, -1].tolist() == [255, 255, 255]
    assert abs(image[0, 32, 0] - round(ramp[0, 32] / 257)) <= 1


@pytest.mark.parametrize("mode", ["P", "CMYK", "L", "LA", "RGBA", "1"])
def test_other_modes_convert_to_the_same_picture(tmp_path, mode):
    picture = _pattern()
    if mode == "RGBA":
        source = picture.convert("RGBA")
        alpha = np.full((40, 60), 255, np.uint8)
        alpha[20:, :10] = 0  # a transparent corner
        source.putalpha(Image.fromarray(alpha))
    elif mode == "LA":
        source = picture.convert("LA")
    elif mode == "P":
        source = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    else:
        source = picture.convert(mode)
    path = tmp_path / f"img_{mode}.{'jpg' if mode == 'CMYK' else 'png' if mode != '1' else 'bmp'}"
    source.save(path)
    image = np.asarray(read_image(path), int)
    expected = np.asarray(source.convert("RGB") if mode in ("L", "LA", "1") else picture, int)
    if mode == "RGBA":
        assert image[30, 5].tolist() == list(ALPHA_BACKGROUND)  # composited over grey, not the hidden colour
        expected = expected.copy()
        expected[20:, :10] = ALPHA_BACKGROUND
    assert image.shape == (40, 60, 3)
    assert np.abs(image - expected).mean() < 12, mode


def test_bombs_absurd_shapes_and_damaged_files_are_typed_errors_naming_the_file(tmp_path):
    wide = tmp_path / "banner.png"
    Image.new("L", (2000, 20)).save(wide)
    with pytest.raises(ImageReadError, match=r"banner\.png: aspect ratio 100\.0:1"):
        read_image(wide)
    big = tmp_path / "bomb.png"
    Image.new("1", (12000, 10000)).save(big)  # 120 M pixels in a few kB
    with pytest.raises(ImageReadError, match=r"bomb\.png: 12000x10000 .* decompression bomb"):
        read_image(big)
    with pytest.raises(ImageReadError, match="bomb.png"):
        read_image(big, max_image_pixels=10**7)
    data = io.BytesIO()
    _pattern().save(data, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png: the image data is damaged or truncated"):
        read_image(cut)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png: not a readable image"):
        read_image(text)
    with pytest.raises(ImageReadError, match=r"absent\.png: cannot read the file"):
        read_image(tmp_path / "absent.png")
    assert issubclass(ImageReadError, DatasetError)


def test_pixels_are_capped_before_the_processor(tmp_path):
    path = tmp_path / "large.jpg"
    _pattern(1600, 1200).save(path, quality=90)
    image = read_image(path, max_pixels=400 * 300)
    assert image.size[0] * image.size[1] <= 400 * 300 and image.size[0] / image.size[1] == pytest.approx(4 / 3, 0.02)
    png = tmp_path / "large.png"
    _pattern(1600, 1200).save(png)
    assert read_image(png, max_pixels=400 * 300).size == (400, 300)
    assert read_image(png).size == (1600, 1200)  # under the default cap: untouched
