"""Contact sheet: a few prototypical expressions drawn by every renderer (avatar flat, avatar shaded, ICT mesh).

    python recipes/benchmarks/contact_sheet.py --out notebooks/figures/contact_sheet.png

The ICT row needs ../shared/data/meshes/ict_facekit (or --mesh-dir); without it the sheet has the avatar rows only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from semanticface.coefficients import FaceCoefficients

DEFAULT_MESH_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "meshes" / "ict_facekit"


def _both(stem: str, value: float) -> dict[str, float]:
    return {f"{stem}Left": value, f"{stem}Right": value}


# Prototypical expressions as ARKit blendshapes (after the usual FACS descriptions of the basic emotions).
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "joy": {**_both("mouthSmile", 0.9), **_both("cheekSquint", 0.6), **_both("eyeSquint", 0.35), "jawOpen": 0.25,
            **_both("mouthUpperUp", 0.2)},
    "surprise": {"browInnerUp": 0.9, **_both("browOuterUp", 0.85), **_both("eyeWide", 0.9), "jawOpen": 0.6},
    "sadness": {"browInnerUp": 0.85, **_both("mouthFrown", 0.75), "mouthShrugLower": 0.4, **_both("eyeLookDown", 0.3),
                **_both("browDown", 0.1)},
    "anger": {**_both("browDown", 0.95), **_both("eyeSquint", 0.4), **_both("eyeWide", 0.3), **_both("noseSneer", 0.4),
              **_both("mouthPress", 0.7), "mouthRollLower": 0.2},
    "disgust": {**_both("noseSneer", 0.9), **_both("mouthUpperUp", 0.7), **_both("browDown", 0.5),
                **_both("cheekSquint", 0.4), "mouthShrugLower": 0.3, "mouthRight": 0.3},
    "wink + tongue": {"eyeBlinkLeft": 1.0, **_both("cheekSquint", 0.2), "tongueOut": 0.8, "jawOpen": 0.3,
                      "mouthSmileRight": 0.5, "jawLeft": 0.3},
    "kiss, head turned": {"mouthPucker": 0.9, "cheekPuff": 0.3, "HeadYaw": 0.5, "HeadRoll": 0.15, "HeadPitch": -0.1,
                          "LeftEyeYaw": -0.6, "RightEyeYaw": -0.6, **_both("eyeSquint", 0.2)},
}  # fmt: skip


def expression(name: str) -> FaceCoefficients:
    return FaceCoefficients.neutral().replace(**EXPRESSIONS[name])


def contact_sheet(mesh_dir: str | Path | None = DEFAULT_MESH_DIR, size: int = 192) -> Image.Image:
    from semanticface.render import get_renderer

    rows = [("avatar flat", get_renderer("avatar-flat")), ("avatar shaded", get_renderer("avatar-shaded"))]
    if mesh_dir and Path(mesh_dir).is_dir():
        rows.append(("ICT-FaceKit mesh", get_renderer("mesh", mesh_dir=mesh_dir)))
    label_w, header_h = 130, 30
    sheet = Image.new("RGB", (label_w + size * len(EXPRESSIONS), header_h + size * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for c, name in enumerate(EXPRESSIONS):
        draw.text((label_w + c * size + size // 2, header_h // 2), name, fill=(0, 0, 0), font=font, anchor="mm")
    for r, (label, renderer) in enumerate(rows):
        draw.text((8, header_h + r * size + size // 2), label, fill=(0, 0, 0), font=font, anchor="lm")
        for c, name in enumerate(EXPRESSIONS):
            image = renderer.render(expression(name), identity=c + 1, size=size)
            sheet.paste(image, (label_w + c * size, header_h + r * size))
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="notebooks/figures/contact_sheet.png")
    parser.add_argument("--mesh-dir", default=str(DEFAULT_MESH_DIR))
    parser.add_argument("--size", type=int, default=192)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(args.mesh_dir, args.size).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
