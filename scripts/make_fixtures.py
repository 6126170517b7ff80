#!/usr/bin/env python3
"""Regenerate regard's labelled fixtures: composed posters, synthetic trailers and truth.json.

Everything is built from the source photographs in fixtures/faces/ and the face boxes and
landmarks of fixtures/faces/faces.toml (checked by eye). Each face pasted on a poster or into a
trailer shot keeps its truth: the source face box transformed by the same scale, flip, rotation
and offset as the pixels. The outputs are committed; CI never runs this script.

Needs Python >= 3.11, Pillow and numpy (scripts/make_fixtures.sh makes a venv with the pinned
versions) and the ffmpeg CLI with libx264. Usage, from the repository root:

    python3 scripts/make_fixtures.py            # posters, trailers, truth.json
    python3 scripts/make_fixtures.py --posters  # posters and truth.json only (keeps trailer truth)
    python3 scripts/make_fixtures.py --summary  # face-size histogram and counts from truth.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

try:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
except ImportError:  # --summary reads truth.json only and needs neither
    np = Image = ImageDraw = ImageFont = None

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
FACES_DIR = FIXTURES / "faces"

POSTER_JPEG_QUALITY = 85
TRAILER_FPS = 25
TRAILER_CRF = 30
# Gap left between two pasted photos, so no crop touches another.
PASTE_GAP_PX = 4


# ---------------------------------------------------------------------------------------------
# Source photos and geometry


@dataclass(frozen=True)
class Photo:
    file: str
    person: str
    gender: str
    size: tuple[int, int]
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]

    def image(self) -> Image.Image:
        return Image.open(FACES_DIR / self.file).convert("RGB")


def load_photos() -> dict[str, Photo]:
    with open(FACES_DIR / "faces.toml", "rb") as f:
        data = tomllib.load(f)
    photos = {}
    for p in data["photo"]:
        stem = p["file"].rsplit(".", 1)[0]
        with Image.open(FACES_DIR / p["file"]) as im:
            if list(im.size) != p["size"]:
                sys.exit(f"faces.toml: {p['file']} is {im.size}, not {p['size']}: re-check its face box")
        photos[stem] = Photo(
            file=p["file"],
            person=p["person"],
            gender=p["gender"],
            size=tuple(p["size"]),
            box=tuple(p["box"]),
            landmarks=tuple(tuple(pt) for pt in p["landmarks"]),
        )
    return photos


@dataclass(frozen=True)
class Paste:
    """One photo placed on a canvas: where the face centre goes and how tall the face is."""

    photo: str
    cx: float
    cy: float
    face_h: float
    flip: bool = False
    angle: float = 0.0  # degrees, counter-clockwise as seen, at most 10
    # A head turn simulated on the frontal photo (see squeeze_far_side): 0 none; > 0 the face's
    # image-right half is the far side, < 0 its image-left half; |yaw| is how much of the far
    # half's width is squeezed away (0.7: it keeps 30%).
    yaw: float = 0.0
    # Crop around the face, in face widths (sides) and face heights (top, bottom).
    side: float = 0.6
    top: float = 0.45
    bottom: float = 0.6


@dataclass
class Placed:
    """A rendered paste: the RGBA layer, its top-left corner, and the face truth on the canvas."""

    layer: Image.Image
    x: int
    y: int
    box: list[float]
    landmarks: list[list[float]]

    def rect(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.x + self.layer.width, self.y + self.layer.height)


def render_paste(p: Paste, photo: Photo) -> Placed:
    bx, by, bw, bh = photo.box
    pw, ph = photo.size
    # Crop box in photo pixels, clamped to the photo.
    c0x = max(0, math.floor(bx - p.side * bw))
    c0y = max(0, math.floor(by - p.top * bh))
    c1x = min(pw, math.ceil(bx + bw + p.side * bw))
    c1y = min(ph, math.ceil(by + bh + p.bottom * bh))
    crop = photo.image().crop((c0x, c0y, c1x, c1y))
    scale = p.face_h / bh
    nw, nh = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    sx, sy = nw / crop.width, nh / crop.height
    layer = crop.resize((nw, nh), Image.LANCZOS)

    def to_layer(x: float, y: float) -> tuple[float, float]:
        lx, ly = (x - c0x) * sx, (y - c0y) * sy
        if p.flip:
            lx = nw - lx
        return lx, ly

    cx, cy = to_layer(bx + bw / 2, by + bh / 2)
    fw, fh = bw * sx, bh * sy
    lms = [to_layer(x, y) for x, y in photo.landmarks]
    if p.flip:
        layer = layer.transpose(Image.FLIP_LEFT_RIGHT)
        # The subject's right eye is whichever eye ends up on the image's left.
        lms = [lms[1], lms[0], lms[2], lms[4], lms[3]]

    if p.yaw:
        layer, g = squeeze_far_side(layer, lms[2][0], fw, p.yaw)
        left, right = g(cx - fw / 2), g(cx + fw / 2)
        cx, fw = (left + right) / 2, right - left
        lms = [(g(x), y) for x, y in lms]

    layer = layer.convert("RGBA")
    if p.angle:
        assert abs(p.angle) <= 10, f"{p.photo}: rotation {p.angle} > 10 degrees"
        ow, oh = layer.size
        layer = layer.rotate(p.angle, resample=Image.BICUBIC, expand=True)
        t = math.radians(p.angle)

        def rot(x: float, y: float) -> tuple[float, float]:
            dx, dy = x - ow / 2, y - oh / 2
            return (
                layer.width / 2 + math.cos(t) * dx + math.sin(t) * dy,
                layer.height / 2 - math.sin(t) * dx + math.cos(t) * dy,
            )

        cx, cy = rot(cx, cy)
        lms = [rot(x, y) for x, y in lms]

    # The layer's top-left corner, so that the face centre lands on (p.cx, p.cy).
    x0, y0 = round(p.cx - cx), round(p.cy - cy)
    # An upright face box of the scaled size around the transformed centre: what a detector
    # draws for a face tilted by a few degrees (not the bounding box of the tilted box).
    box = [x0 + cx - fw / 2, y0 + cy - fh / 2, fw, fh]
    landmarks = [[x0 + x, y0 + y] for x, y in lms]
    return Placed(layer, x0, y0, box, landmarks)


def squeeze_far_side(layer: Image.Image, nose_x: float, face_w: float, yaw: float):
    """A head turn, simulated: the photos are frontal, so a turned face is imitated by squeezing
    the far half of the face horizontally about the nose (to 1 - |yaw| of its width) while the
    near half keeps 95%, the squeeze ramping smoothly over a tenth of the face width around the
    nose. The far eye closes in on the nose as in a real turn, but nothing hidden is revealed
    and the nose has no depth: a profile-like view, not a profile. Each output pixel averages
    4 samples of the source row (no aliasing). Returns the new layer and the x mapping."""
    near, far = 0.95, 1.0 - abs(yaw)
    w, h = layer.size
    # x' = g(x): integrate the local scale g'(x) on a fine grid.
    fine = np.linspace(0.0, w, 8 * w + 1)
    u = (fine - nose_x) / (0.1 * face_w) * (1 if yaw > 0 else -1)
    ramp = np.clip((u + 0.5), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)
    scale = near + (far - near) * ramp
    gx = np.concatenate([[0.0], np.cumsum((scale[1:] + scale[:-1]) / 2 * np.diff(fine))])

    def g(x: float) -> float:
        return float(np.interp(x, fine, gx))

    out_w = max(1, math.ceil(gx[-1]))
    src = np.asarray(layer.convert("RGB"), dtype=np.float64)
    sub = (np.arange(out_w * 4) + 0.5) / 4
    xs = np.interp(sub, gx, fine) - 0.5  # source x of each sub-sample, in pixel-centre units
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    x1 = np.clip(x0 + 1, 0, w - 1)
    fr = np.clip(xs - np.floor(xs), 0.0, 1.0)[None, :, None]
    rows = src[:, x0, :] * (1 - fr) + src[:, x1, :] * fr
    out = rows.reshape(h, out_w, 4, 3).mean(axis=2)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB"), g


def overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    g = PASTE_GAP_PX
    return not (a[2] + g <= b[0] or b[2] + g <= a[0] or a[3] + g <= b[1] or b[3] + g <= a[1])


def compose(canvas: Image.Image, pastes: list[Paste], photos: dict[str, Photo], name: str) -> list[dict]:
    """Paste every photo; refuse overlaps and crops leaving the canvas. Returns the face truth."""
    placed: list[Placed] = []
    for p in pastes:
        pl = render_paste(p, photos[p.photo])
        r = pl.rect()
        if r[0] < 0 or r[1] < 0 or r[2] > canvas.width or r[3] > canvas.height:
            sys.exit(f"{name}: {p.photo} at ({p.cx}, {p.cy}) leaves the {canvas.size} canvas: {r}")
        for other, q in zip(placed, pastes):
            if overlaps(r, other.rect()):
                sys.exit(f"{name}: {p.photo} overlaps {q.photo}")
        placed.append(pl)
        canvas.paste(pl.layer, (pl.x, pl.y), pl.layer)
    faces = []
    for p, pl in zip(pastes, placed):
        ph = photos[p.photo]
        faces.append(
            {
                "person": ph.person,
                "gender": ph.gender,
                "box": [round(v, 1) for v in pl.box],
                "landmarks": [[round(x, 1), round(y, 1)] for x, y in pl.landmarks],
                "photo": ph.file,
                "flipped": p.flip,
                "rotation_deg": p.angle,
                # Only a face with a simulated turn has the key (older truth stays as it was).
                **({"yaw": p.yaw} if p.yaw else {}),
            }
        )
    return faces


def row(y: float, x0: float, x1: float, items: list[tuple]) -> list[Paste]:
    """Spread pastes between x0 and x1 on a row whose face centres are at height y, each in a
    slot as wide as its face is tall relative to the others.

    Each item is (photo, face_h) or (photo, face_h, options dict)."""
    total = sum(it[1] for it in items)
    out = []
    left = x0
    for it in items:
        opts = dict(it[2]) if len(it) > 2 else {}
        slot = (x1 - x0) * it[1] / total
        cx, left = left + slot / 2, left + slot
        out.append(Paste(it[0], cx, y + opts.pop("dy", 0), it[1], **opts))
    return out


# ---------------------------------------------------------------------------------------------
# Backgrounds


def gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int], diagonal=False) -> Image.Image:
    w, h = size
    ys = np.linspace(0.0, 1.0, h)[:, None]
    xs = np.linspace(0.0, 1.0, w)[None, :]
    t = (ys * 0.75 + xs * 0.25) if diagonal else np.broadcast_to(ys, (h, w))
    t = t[..., None]
    a = np.asarray(top, float)[None, None, :]
    b = np.asarray(bottom, float)[None, None, :]
    return Image.fromarray((a + (b - a) * t).round().astype(np.uint8), "RGB")


def blocks(img: Image.Image, rects: list[tuple[float, float, float, float, tuple]]) -> None:
    """Flat blocks of colour, rectangles given as fractions of the canvas."""
    d = ImageDraw.Draw(img)
    w, h = img.size
    for x0, y0, x1, y1, colour in rects:
        d.rectangle([x0 * w, y0 * h, x1 * w, y1 * h], fill=colour)


def text(img: Image.Image, lines: list[tuple[str, float, float, tuple]]) -> None:
    """Centred lines of text: (text, centre y as a fraction of the height, size in px, colour)."""
    d = ImageDraw.Draw(img)
    for s, fy, size, colour in lines:
        font = ImageFont.load_default(size=size)
        l, t, r, b = d.textbbox((0, 0), s, font=font)
        d.text(((img.width - (r - l)) / 2 - l, fy * img.height - (b - t) / 2 - t), s, font=font, fill=colour)


BILLING = "A FILM BY NOBODY IN PARTICULAR  WITH THE USUAL SUSPECTS  MUSIC BY NONE  PRODUCED FOR TESTS ONLY"


# ---------------------------------------------------------------------------------------------
# Posters


def posters() -> list[dict]:
    """Each poster: file name, size, background painter, pastes."""
    P = []

    def bg_bench(img):
        blocks(img, [(0, 0.70, 1, 1, (24, 24, 40)), (0, 0.655, 1, 0.67, (220, 170, 40))])
        text(img, [("LES INVISIBLES", 0.09, 150, (250, 245, 230)), ("un film de test", 0.14, 60, (230, 220, 200)),
                   (BILLING, 0.95, 34, (200, 200, 200)), ("PROCHAINEMENT", 0.975, 48, (220, 170, 40))])

    P.append({
        "file": "bench_2000x3000_8faces.jpg", "size": (2000, 3000),
        "background": lambda s: gradient(s, (40, 70, 120), (150, 60, 70)), "paint": bg_bench,
        "pastes": row(820, 0, 2000, [("ardern_1", 320), ("macron_2", 320, {"flip": True})])
        + row(1560, 0, 2000, [("obama_1", 200), ("astronaut", 200, {"angle": 6}), ("sunak_1", 200, {"flip": True})])
        + row(2330, 0, 2000, [("biden_1", 110), ("ardern_2", 110, {"flip": True, "angle": -5}), ("macron_1", 60)]),
    })

    def bg_small(img):
        text(img, [("DEUX SAISONS", 0.08, 80, (30, 30, 30)), (BILLING[:60], 0.93, 16, (60, 60, 60))])

    P.append({
        "file": "bench_1000x1500.jpg", "size": (1000, 1500),
        "background": lambda s: gradient(s, (235, 225, 200), (200, 170, 120)), "paint": bg_small,
        "pastes": row(470, 0, 1000, [("ardern_2", 180), ("obama_2", 180)])
        + row(1030, 0, 1000, [("astronaut", 70, {"flip": True}), ("sunak_1", 70), ("macron_2", 45, {"angle": 5})]),
    })

    def bg_close(img):
        text(img, [("ELLE", 0.06, 200, (255, 255, 255)), ("une femme, un destin", 0.92, 70, (255, 230, 200)),
                   (BILLING, 0.975, 30, (230, 230, 230))])

    P.append({
        "file": "closeup_2000x3000.jpg", "size": (2000, 3000),
        "background": lambda s: gradient(s, (10, 10, 20), (90, 30, 40)), "paint": bg_close,
        # The whole photo, scaled so the face is about 960 px tall, and one small face in the billing.
        "pastes": [Paste("ardern_2", 1000, 1240, 960, side=0.75, top=0.35, bottom=0.9),
                   Paste("macron_1", 1780, 2640, 36)],
    })

    def bg_crowd(img):
        blocks(img, [(0.05, 0.05, 0.95, 0.30, (250, 250, 250))])
        text(img, [("LA FOULE", 0.15, 220, (20, 20, 20)), ("ils etaient tous la", 0.25, 70, (80, 80, 80)),
                   (BILLING, 0.96, 34, (240, 240, 240))])

    crowd = [("ardern_1", 14), ("obama_2", 16, {"flip": True}), ("sunak_1", 18), ("astronaut", 19),
             ("macron_2", 22, {"flip": True}), ("biden_1", 26), ("ardern_2", 30, {"flip": True}),
             ("obama_1", 34), ("astronaut", 38, {"flip": True}), ("macron_2", 44)]
    P.append({
        "file": "crowd_2000x3000.jpg", "size": (2000, 3000),
        "background": lambda s: gradient(s, (60, 110, 80), (20, 40, 30)), "paint": bg_crowd,
        "pastes": row(1300, 150, 1850, crowd[:4]) + row(1750, 150, 1850, crowd[4:7]) + row(2300, 150, 1850, crowd[7:]),
    })

    def bg_women(img):
        blocks(img, [(0, 0, 0.12, 1, (200, 60, 90)), (0.88, 0, 1, 1, (200, 60, 90))])
        text(img, [("TROIS FEMMES", 0.07, 80, (255, 255, 255)), (BILLING[:55], 0.95, 16, (230, 230, 230))])

    P.append({
        "file": "women_1000x1500.jpg", "size": (1000, 1500),
        "background": lambda s: gradient(s, (70, 40, 90), (30, 20, 50)), "paint": bg_women,
        "pastes": [Paste("ardern_1", 500, 420, 220, angle=-4)]
        + row(930, 130, 870, [("astronaut", 140, {"flip": True}), ("ardern_2", 140)])
        + [Paste("obama_1", 500, 1260, 90)],
    })

    def bg_land(img):
        blocks(img, [(0, 0, 1, 0.16, (15, 15, 15)), (0, 0.84, 1, 1, (15, 15, 15))])
        text(img, [("LE CONSEIL", 0.08, 160, (240, 200, 60)), (BILLING, 0.90, 44, (230, 230, 230)),
                   ("EN SALLES", 0.955, 60, (240, 200, 60))])

    P.append({
        "file": "landscape_3000x2000.jpg", "size": (3000, 2000),
        "background": lambda s: gradient(s, (110, 140, 170), (40, 60, 90), diagonal=True), "paint": bg_land,
        "pastes": row(820, 0, 3000, [("macron_2", 300, {"angle": -8}), ("ardern_1", 260, {"flip": True}),
                                     ("obama_2", 220), ("astronaut", 180, {"angle": 8}), ("sunak_1", 150, {"flip": True}),
                                     ("biden_1", 120)])
        + row(1400, 900, 2100, [("ardern_2", 32), ("macron_1", 28, {"flip": True})]),
    })

    def bg_ensemble(img):
        blocks(img, [(0, 0, 1, 0.13, (245, 240, 230)), (0, 0.89, 1, 1, (245, 240, 230))])
        text(img, [("ENSEMBLE", 0.065, 180, (30, 30, 60)), (BILLING, 0.93, 34, (30, 30, 60)),
                   ("AU CINEMA", 0.965, 50, (160, 40, 40))])

    P.append({
        "file": "ensemble_2000x3000.jpg", "size": (2000, 3000),
        "background": lambda s: gradient(s, (180, 120, 60), (90, 50, 30)), "paint": bg_ensemble,
        "pastes": row(700, 0, 2000, [("macron_2", 160, {"flip": True}), ("ardern_1", 140, {"angle": 7}), ("biden_1", 120)])
        + row(1250, 0, 2000, [("astronaut", 100, {"angle": -6}), ("obama_2", 85, {"flip": True}), ("ardern_2", 72)])
        + row(1800, 0, 2000, [("sunak_1", 64, {"flip": True}), ("astronaut", 56), ("obama_1", 48, {"angle": 9})])
        + row(2300, 600, 1400, [("ardern_1", 40, {"flip": True})]),
    })

    def bg_duo(img):
        blocks(img, [(0.0, 0.0, 0.5, 0.08, (250, 250, 250)), (0.5, 0.0, 1.0, 0.08, (20, 20, 20))])
        text(img, [("ELLES DEUX", 0.20, 90, (255, 255, 255)), (BILLING[:60], 0.96, 16, (200, 200, 200))])

    P.append({
        "file": "duo_1000x1500.jpg", "size": (1000, 1500),
        "background": lambda s: gradient(s, (20, 60, 90), (10, 20, 30)), "paint": bg_duo,
        "pastes": row(700, 0, 1000, [("astronaut", 250), ("ardern_2", 250, {"flip": True, "angle": 3})])
        + [Paste("macron_1", 880, 1330, 24)],
    })
    return P


def make_posters(photos: dict[str, Photo]) -> dict[str, dict]:
    out_dir = FIXTURES / "posters"
    out_dir.mkdir(exist_ok=True)
    truth = {}
    for spec in posters():
        img = spec["background"](spec["size"])
        spec["paint"](img)
        faces = compose(img, spec["pastes"], photos, spec["file"])
        img.save(out_dir / spec["file"], quality=POSTER_JPEG_QUALITY, optimize=True)
        w, h = spec["size"]
        truth[f"posters/{spec['file']}"] = {"width": w, "height": h, "faces": faces}
        print(f"posters/{spec['file']}: {len(faces)} faces")
    return truth


def source_truth(photos: dict[str, Photo]) -> dict[str, dict]:
    truth = {}
    for ph in photos.values():
        truth[f"faces/{ph.file}"] = {
            "width": ph.size[0],
            "height": ph.size[1],
            "faces": [{"person": ph.person, "gender": ph.gender, "box": list(ph.box),
                       "landmarks": [list(p) for p in ph.landmarks], "photo": ph.file,
                       "flipped": False, "rotation_deg": 0.0}],
        }
    return truth


# ---------------------------------------------------------------------------------------------
# Trailers: each shot is a still composed here (twice the output size), animated by ffmpeg's
# zoompan (a pan is a constant zoom with a moving window), and the shots are joined by hard cuts.


@dataclass(frozen=True)
class Shot:
    seconds: float
    pastes: tuple[Paste, ...]
    # Window in still pixels at the first and last frame: zoom factor and centre.
    zoom: tuple[float, float] = (1.0, 1.0)
    centre_from: tuple[float, float] | None = None  # default: still centre
    centre_to: tuple[float, float] | None = None
    background: tuple[tuple[int, int, int], tuple[int, int, int]] = ((40, 50, 70), (15, 15, 25))
    caption: str = ""


@dataclass(frozen=True)
class Trailer:
    file: str
    size: tuple[int, int]
    shots: tuple[Shot, ...]
    audio: bool = False


def side_by_side(still: tuple[int, int], items: list[tuple], cy_frac: float = 0.45) -> tuple[Paste, ...]:
    w, h = still
    return tuple(row(h * cy_frac, 0, w, items))


def trailers() -> list[Trailer]:
    s1 = (1280, 720)
    s2 = (1708, 960)
    t1 = Trailer("t1_640x360.mp4", (640, 360), (
        Shot(3.0, side_by_side(s1, [("macron_2", 230), ("ardern_1", 230)]), zoom=(1.15, 1.15),
             centre_from=(560, 360), centre_to=(720, 360)),
        Shot(2.0, (), caption="UN FILM DE TEST", background=((10, 10, 10), (50, 20, 20))),
        Shot(3.0, side_by_side(s1, [("obama_1", 260)]), zoom=(1.0, 1.35), centre_to=(640, 320)),
        Shot(3.0, side_by_side(s1, [("ardern_2", 250, {"flip": True})]), zoom=(1.0, 1.3), centre_to=(640, 320),
             background=((90, 70, 50), (30, 20, 10))),
        Shot(3.0, side_by_side(s1, [("macron_2", 200), ("obama_1", 200, {"flip": True}), ("sunak_1", 200)]),
             zoom=(1.0, 1.0)),
        Shot(3.0, side_by_side(s1, [("ardern_1", 240, {"flip": True}), ("sunak_1", 240)]), zoom=(1.1, 1.1),
             centre_from=(700, 380), centre_to=(580, 340), background=((20, 60, 40), (10, 20, 15))),
        Shot(3.0, side_by_side(s1, [("macron_2", 300)]), zoom=(1.25, 1.0), centre_from=(640, 330)),
    ))
    t2 = Trailer("t2_854x480.mp4", (854, 480), (
        Shot(2.4, (), caption="PROCHAINEMENT", background=((0, 0, 0), (20, 20, 60))),
        Shot(3.6, side_by_side(s2, [("astronaut", 330)]), zoom=(1.0, 1.3), centre_to=(854, 400),
             background=((120, 130, 150), (40, 45, 60))),
        Shot(3.0, side_by_side(s2, [("biden_1", 280), ("obama_2", 280, {"flip": True})]), zoom=(1.12, 1.12),
             centre_from=(760, 480), centre_to=(948, 480)),
        Shot(3.0, side_by_side(s2, [("astronaut", 260, {"flip": True}), ("ardern_2", 260)]), zoom=(1.0, 1.0),
             background=((150, 90, 60), (60, 30, 20))),
        Shot(3.0, side_by_side(s2, [("macron_1", 240), ("biden_1", 280)]), zoom=(1.0, 1.2)),
        Shot(2.4, side_by_side(s2, [("ardern_2", 340)]), zoom=(1.2, 1.2), centre_from=(854, 420),
             centre_to=(854, 520)),
        Shot(3.0, side_by_side(s2, [("obama_2", 240), ("astronaut", 240), ("macron_1", 240, {"flip": True})]),
             zoom=(1.0, 1.0), background=((50, 50, 50), (10, 10, 10))),
        Shot(2.6, (), caption="EN SALLES", background=((0, 0, 0), (60, 20, 20))),
    ), audio=True)
    t3 = Trailer("t3_640x360.mp4", (640, 360), (
        Shot(2.0, side_by_side(s1, [("sunak_1", 260)]), zoom=(1.0, 1.2)),
        Shot(2.0, side_by_side(s1, [("macron_2", 220, {"flip": True}), ("ardern_1", 220)]), zoom=(1.1, 1.1),
             centre_from=(600, 360), centre_to=(680, 360)),
        Shot(2.0, (), caption="ILS REVIENNENT"),
        Shot(2.0, side_by_side(s1, [("obama_2", 280)]), zoom=(1.2, 1.0), background=((80, 20, 20), (20, 5, 5))),
        Shot(2.4, side_by_side(s1, [("macron_1", 240)]), zoom=(1.0, 1.25), centre_to=(640, 330)),
        Shot(2.6, side_by_side(s1, [("ardern_2", 220), ("sunak_1", 220, {"flip": True})]), zoom=(1.0, 1.0)),
        Shot(3.0, side_by_side(s1, [("biden_1", 200), ("obama_2", 200), ("ardern_1", 200, {"flip": True})]),
             zoom=(1.1, 1.1), centre_from=(700, 360), centre_to=(580, 360)),
    ))
    # Four men; obama and macron only in profile-like views (simulated turns, squeeze_far_side),
    # each in two shots turned opposite ways; biden frontal, back after a shot with nobody.
    t4 = Trailer("t4_640x360.mp4", (640, 360), (
        Shot(3.0, side_by_side(s1, [("sunak_1", 230), ("biden_1", 230)]), zoom=(1.0, 1.1)),
        Shot(2.0, side_by_side(s1, [("obama_1", 260, {"yaw": 0.7})]), zoom=(1.1, 1.0),
             background=((60, 40, 40), (20, 10, 10))),
        Shot(2.0, side_by_side(s1, [("macron_1", 260, {"yaw": -0.7})]), zoom=(1.0, 1.15),
             background=((40, 60, 50), (10, 20, 15))),
        Shot(2.0, (), caption="DE PROFIL"),
        Shot(3.0, side_by_side(s1, [("biden_1", 240, {"flip": True}), ("obama_1", 240, {"yaw": -0.7})]),
             zoom=(1.1, 1.1), centre_from=(600, 360), centre_to=(680, 360)),
        Shot(2.4, side_by_side(s1, [("macron_1", 280, {"yaw": 0.7})]), zoom=(1.2, 1.0),
             background=((70, 70, 90), (20, 20, 30))),
    ))
    return [t1, t2, t3, t4]


def window(shot: Shot, still: tuple[int, int], n: int, frames: int) -> tuple[float, float, float]:
    """Zoom and top-left corner of the visible window, in still pixels, at frame n of the shot."""
    w, h = still
    t = n / max(1, frames - 1)
    z = shot.zoom[0] + (shot.zoom[1] - shot.zoom[0]) * t
    c0 = shot.centre_from or (w / 2, h / 2)
    c1 = shot.centre_to or c0
    cx, cy = c0[0] + (c1[0] - c0[0]) * t, c0[1] + (c1[1] - c0[1]) * t
    x = min(max(cx - w / z / 2, 0), w - w / z)
    y = min(max(cy - h / z / 2, 0), h - h / z)
    # zoompan crops an integer window at an integer corner.
    return z, math.floor(x), math.floor(y)


def to_frame(box: list[float], z: float, x: float, y: float, still: tuple[int, int], out: tuple[int, int]) -> list[float]:
    k = out[0] / math.floor(still[0] / z)
    return [(box[0] - x) * k, (box[1] - y) * k, box[2] * k, box[3] * k]


def zoompan_filter(shot: Shot, still: tuple[int, int], out: tuple[int, int], frames: int) -> str:
    w, h = still
    c0 = shot.centre_from or (w / 2, h / 2)
    c1 = shot.centre_to or c0
    t = f"(on/{max(1, frames - 1)})"
    z = f"({shot.zoom[0]}+{shot.zoom[1] - shot.zoom[0]}*{t})"
    cx = f"({c0[0]}+{c1[0] - c0[0]}*{t})"
    cy = f"({c0[1]}+{c1[1] - c0[1]}*{t})"
    x = f"min(max({cx}-iw/zoom/2\\,0)\\,iw-iw/zoom)"
    y = f"min(max({cy}-ih/zoom/2\\,0)\\,ih-ih/zoom)"
    return f"zoompan=z='{z}':x='{x}':y='{y}':d={frames}:s={out[0]}x{out[1]}:fps={TRAILER_FPS}"


def make_trailer(tr: Trailer, photos: dict[str, Photo], tmp: Path) -> dict:
    out_w, out_h = tr.size
    still = (out_w * 2, out_h * 2)
    inputs, filters, shots_truth = [], [], []
    seconds: dict[str, float] = {}
    frame0 = 0
    for i, shot in enumerate(tr.shots):
        frames = round(shot.seconds * TRAILER_FPS)
        if abs(frames - shot.seconds * TRAILER_FPS) > 1e-6:
            sys.exit(f"{tr.file} shot {i + 1}: {shot.seconds} s is not a whole number of frames")
        img = gradient(still, *shot.background)
        if shot.caption:
            text(img, [(shot.caption, 0.5, still[1] // 8, (240, 230, 210))])
        faces = compose(img, list(shot.pastes), photos, f"{tr.file} shot {i + 1}")
        path = tmp / f"{tr.file}.{i:02d}.png"
        img.save(path)
        inputs += ["-framerate", str(TRAILER_FPS), "-i", str(path)]
        filters.append(f"[{i}:v]{zoompan_filter(shot, still, tr.size, frames)},setsar=1[v{i}]")
        # Truth: the face boxes in the first and last frame; every frame must show every face whole.
        for n in range(frames):
            z, x, y = window(shot, still, n, frames)
            for f in faces:
                b = to_frame(f["box"], z, x, y, still, tr.size)
                if b[0] < 0 or b[1] < 0 or b[0] + b[2] > out_w or b[1] + b[3] > out_h or b[3] < 60:
                    sys.exit(f"{tr.file} shot {i + 1} frame {n}: {f['photo']} at {b} is cut or < 60 px")
        shot_faces = []
        for f in faces:
            first = to_frame(f["box"], *window(shot, still, 0, frames), still, tr.size)
            last = to_frame(f["box"], *window(shot, still, frames - 1, frames), still, tr.size)
            shot_faces.append({"person": f["person"], "gender": f["gender"], "photo": f["photo"],
                               "flipped": f["flipped"], "box_first": [round(v, 1) for v in first],
                               "box_last": [round(v, 1) for v in last],
                               **({"yaw": f["yaw"]} if "yaw" in f else {})})
            seconds[f["person"]] = seconds.get(f["person"], 0.0) + frames / TRAILER_FPS
        shots_truth.append({"start_s": round(frame0 / TRAILER_FPS, 3),
                            "end_s": round((frame0 + frames) / TRAILER_FPS, 3),
                            "persons": sorted({f["person"] for f in faces}),
                            "faces": shot_faces})
        frame0 += frames
    n = len(tr.shots)
    graph = ";".join(filters) + ";" + "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0,format=yuv420p[v]"
    duration = frame0 / TRAILER_FPS
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs]
    if tr.audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=44100:duration={duration}"]
    cmd += ["-filter_complex", graph, "-map", "[v]"]
    if tr.audio:
        cmd += ["-map", f"{n}:a", "-af", "volume=0.05", "-c:a", "aac", "-b:a", "32k"]
    out = FIXTURES / "trailers" / tr.file
    out.parent.mkdir(exist_ok=True)
    cmd += ["-c:v", "libx264", "-preset", "slow", "-crf", str(TRAILER_CRF), "-pix_fmt", "yuv420p",
            "-r", str(TRAILER_FPS), "-g", str(2 * TRAILER_FPS), "-threads", "2",
            "-map_metadata", "-1", "-movflags", "+faststart", str(out)]
    subprocess.run(cmd, check=True)
    print(f"trailers/{tr.file}: {n} shots, {duration} s")
    genders = {}
    persons = []
    for p in sorted(seconds):
        g = next(ph.gender for ph in photos.values() if ph.person == p)
        genders[g] = genders.get(g, 0) + 1
        persons.append({"person": p, "gender": g, "seconds_on_screen": round(seconds[p], 3)})
    return {"duration_s": duration, "fps": TRAILER_FPS, "width": out_w, "height": out_h,
            "shots": shots_truth, "persons": persons,
            "distinct_persons": {"female": genders.get("female", 0), "male": genders.get("male", 0)}}


# The face-height buckets of the evaluation, half-open: [0, 20), [20, 40), [40, 80), [80, inf).
SIZE_BUCKETS = ((0, 20, "<20"), (20, 40, "20-40"), (40, 80, "40-80"), (80, math.inf, ">=80"))


def summary() -> None:
    truth = json.loads((FIXTURES / "truth.json").read_text())
    hist = {label: 0 for _, _, label in SIZE_BUCKETS}
    genders: dict[str, int] = {}
    n_posters = n_faces = 0
    for name, img in truth["images"].items():
        if not name.startswith("posters/"):
            continue
        n_posters += 1
        heights = [f["box"][3] for f in img["faces"]]
        women = sum(f["gender"] == "female" for f in img["faces"])
        print(f"{name}: {img['width']}x{img['height']}, {len(heights)} faces ({women} female), "
              f"heights {min(heights):.0f}-{max(heights):.0f} px, from {sorted({f['photo'] for f in img['faces']})}")
        for f in img["faces"]:
            n_faces += 1
            genders[f["gender"]] = genders.get(f["gender"], 0) + 1
            h = f["box"][3]
            hist[next(label for lo, hi, label in SIZE_BUCKETS if lo <= h < hi)] += 1
    print(f"posters: {n_posters}, faces: {n_faces}, by gender: {genders}")
    print("face heights: " + ", ".join(f"{k} px: {v}" for k, v in hist.items()))
    print(f"faces >= 32 px: {sum(f['box'][3] >= 32 for k, i in truth['images'].items() if k.startswith('posters/') for f in i['faces'])}")
    for name, tr in truth["trailers"].items():
        heights = [b[3] for s in tr["shots"] for f in s["faces"] for b in (f["box_first"], f["box_last"])]
        print(f"{name}: {tr['width']}x{tr['height']}, {tr['duration_s']} s, {len(tr['shots'])} shots "
              f"({sum(not s['persons'] for s in tr['shots'])} with nobody), distinct {tr['distinct_persons']}, "
              f"face heights {min(heights):.0f}-{max(heights):.0f} px, "
              f"from {sorted({f['photo'] for s in tr['shots'] for f in s['faces']})}")


def to_json(value, indent: int = 0) -> str:
    """Indented JSON with each face (any object naming a person) and each short value on one
    line, so that a diff of truth.json shows which face changed."""
    flat = json.dumps(value, separators=(", ", ": "))
    if not isinstance(value, (dict, list)) or len(flat) <= 100 or (isinstance(value, dict) and "person" in value):
        return flat
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + to_json(v, indent + 1) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posters", action="store_true", help="posters only; keep the trailer truth")
    ap.add_argument("--summary", action="store_true", help="print counts from truth.json and exit")
    args = ap.parse_args()
    if args.summary:
        summary()
        return
    if Image is None:
        sys.exit("make_fixtures.py needs Pillow and numpy: run scripts/make_fixtures.sh")
    photos = load_photos()
    truth_path = FIXTURES / "truth.json"
    images = source_truth(photos)
    images.update(make_posters(photos))
    if args.posters:
        trailer_truth = json.loads(truth_path.read_text())["trailers"] if truth_path.exists() else {}
    else:
        trailer_truth = {}
        with tempfile.TemporaryDirectory() as tmp:
            for tr in trailers():
                trailer_truth[f"trailers/{tr.file}"] = make_trailer(tr, photos, Path(tmp))
    # The held-out part of the labelled set is labelled by hand in its own file (its photographs
    # are fetched by scripts/setup_models.py, not made here): truth.json only names it.
    truth = {"images": images, "trailers": trailer_truth, "held_out": "heldout-truth.json"}
    truth_path.write_text(to_json(truth) + "\n")
    print(f"wrote {truth_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
