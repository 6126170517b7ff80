#!/usr/bin/env python3
"""Golden reference for the derived face-api AgeGenderNet: face-api's own JavaScript vs the ONNX file.

For every face regard finds on the photos below, this cuts the square crop the model expects
(from YuNet's five landmarks, rule in models/manifest.toml), runs face-api.js's AgeGenderNet on
tfjs's CPU backend under Node (scripts/golden_agegender.mjs) and the derived
models/faceapi_age_gender.onnx under ONNX Runtime, and writes

  fixtures/golden/agegender/<photo>_<face>.png   the 112x112 RGB crop (the model's exact input)
  fixtures/golden/agegender.json                 per crop: its sha256, face-api's age and
                                                 [P(female), P(male)]; the measured differences

so that a Rust test can check its own inference against face-api without Node.

Crop: le, re = eye centres, mo = mean of the mouth corners, d = mean distance of le and re to
mo; side = d / 0.45; top-left = centroid(le, re, mo) - (0.5, 0.43) * side. Chip pixel (c, r)
samples the image bilinearly at (x0 + c*s, y0 + r*s), s = side / 112, no pre-filter; pixels
whose taps leave the image are black; values are rounded. Images are decoded with Pillow.

Needs: `python3 scripts/setup_models.py` done, npm, and a regard build (landmarks come from
`cargo run -q -- analyze --json`). Python packages (onnx, numpy, onnxruntime, Pillow) and the
Node packages are installed on first use into .cache/golden-venv and .cache/golden-node.

Usage: python3 scripts/golden_agegender.py
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "golden-venv"
NODE_DIR = ROOT / ".cache" / "golden-node"
PY_REQUIREMENTS = ["onnx==1.23.2", "numpy==2.4.6", "onnxruntime==1.31.1", "pillow==11.3.0"]
NODE_REQUIREMENTS = ["@vladmandic/face-api@1.7.15", "@tensorflow/tfjs@4.22.0", "@tensorflow/tfjs-backend-wasm@4.22.0"]
MODEL_NAME = "faceapi-agegender"
IMAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "fixtures" / "faces").glob("*.jpg")) + [
    "fixtures/faces/astronaut.png",
    "fixtures/posters/duo_1000x1500.jpg",
]
OUT_JSON = ROOT / "fixtures" / "golden" / "agegender.json"
OUT_DIR = ROOT / "fixtures" / "golden" / "agegender"
SIDE = 112


def say(message):
    print(f"golden: {message}", file=sys.stderr, flush=True)


def ensure_venv():
    """Re-run this script inside the private venv (created on first use)."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / "requirements.txt"
    wanted = "\n".join(PY_REQUIREMENTS)
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        say("creating .cache/golden-venv")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PY_REQUIREMENTS], check=True)
        stamp.write_text(wanted)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def ensure_node():
    stamp = NODE_DIR / "requirements.txt"
    wanted = "\n".join(NODE_REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    say("installing face-api and tfjs into .cache/golden-node")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    (NODE_DIR / "package.json").write_text('{"private": true}\n')
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--ignore-scripts", *NODE_REQUIREMENTS],
        cwd=NODE_DIR,
        check=True,
    )
    stamp.write_text(wanted)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def manifest_entry():
    with open(ROOT / "models" / "manifest.toml", "rb") as f:
        manifest = tomllib.load(f)
    for model in manifest["model"]:
        if model["name"] == MODEL_NAME:
            return model
    raise SystemExit(f"golden: no {MODEL_NAME} in models/manifest.toml")


def faceapi_model_dir(entry):
    """face-api's weights as installed for Node, checked against the manifest's member hashes."""
    model_dir = NODE_DIR / "node_modules" / "@vladmandic" / "face-api" / "model"
    for member in entry["source"]["members"]:
        path = model_dir / Path(member["member"]).name
        if sha256_bytes(path.read_bytes()) != member["sha256"]:
            raise SystemExit(f"golden: {path} does not have the manifest's sha256")
    return model_dir


def landmarks():
    """(image, face index, landmarks, box) for every face regard's YuNet finds."""
    out = subprocess.run(
        ["cargo", "run", "-q", "--", "analyze", "--json", *IMAGES],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    faces = []
    for result in json.loads(out)["results"]:
        if result["status"] != "succeeded":
            raise SystemExit(f"golden: regard failed on {result['input']}")
        for i, face in enumerate(result["analysis"]["faces"]):
            faces.append((result["input"], i, face["landmarks"], face["bbox"]))
    return faces


def crop_box(points):
    import numpy as np

    p = np.asarray(points, np.float64)
    le, re, mo = p[0], p[1], (p[3] + p[4]) / 2.0
    d = (np.linalg.norm(le - mo) + np.linalg.norm(re - mo)) / 2.0
    side = d / 0.45
    ref = (le + re + mo) / 3.0
    return float(ref[0] - 0.5 * side), float(ref[1] - 0.43 * side), float(side)


def crop(image, x0, y0, side):
    import numpy as np

    h, w, _ = image.shape
    s = side / SIDE
    grid = np.arange(SIDE, dtype=np.float64) * s
    xs, ys = np.meshgrid(x0 + grid, y0 + grid)
    xf, yf = np.floor(xs), np.floor(ys)
    xi, yi = xf.astype(np.int64), yf.astype(np.int64)
    inside = (xi >= 0) & (yi >= 0) & (xi + 1 < w) & (yi + 1 < h)
    xi, yi = np.clip(xi, 0, w - 2), np.clip(yi, 0, h - 2)
    dx, dy = (xs - xf)[..., None], (ys - yf)[..., None]
    img = image.astype(np.float64)
    top = img[yi, xi] * (1 - dx) + img[yi, xi + 1] * dx
    bottom = img[yi + 1, xi] * (1 - dx) + img[yi + 1, xi + 1] * dx
    out = np.clip(np.round(top * (1 - dy) + bottom * dy), 0, 255).astype(np.uint8)
    out[~inside] = 0
    return out


def main():
    ensure_venv()
    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    entry = manifest_entry()
    onnx_path = ROOT / "models" / entry["file"]
    if sha256_bytes(onnx_path.read_bytes()) != entry["sha256"]:
        raise SystemExit(f"golden: {onnx_path} is missing or altered: run python3 scripts/setup_models.py")
    ensure_node()
    model_dir = faceapi_model_dir(entry)

    crops, records = [], []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    decoded = {}
    for path, i, points, box in landmarks():
        if path not in decoded:
            decoded[path] = np.asarray(Image.open(ROOT / path).convert("RGB"))
        x0, y0, side = crop_box(points)
        chip = crop(decoded[path], x0, y0, side)
        name = f"{Path(path).stem}_{i}"
        png = OUT_DIR / f"{name}.png"
        Image.fromarray(chip).save(png, optimize=False, compress_level=9)
        crops.append(chip)
        records.append({
            "name": name,
            "image": path,
            "landmarks": [[round(v, 3) for v in pt] for pt in points],
            "face_height_px": round(box["height"], 1),
            "crop": {"x": round(x0, 3), "y": round(y0, 3), "side": round(side, 3)},
            "png": str(png.relative_to(ROOT)),
            "rgb_sha256": sha256_bytes(chip.tobytes()),
        })
    batch = np.stack(crops)

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "crops.rgb"
        raw.write_bytes(batch.tobytes())
        out = subprocess.run(
            ["node", str(ROOT / "scripts" / "golden_agegender.mjs"), str(NODE_DIR), str(model_dir), str(raw), str(len(crops))],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    tfjs = json.loads(out)

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    age_b, gender_b = session.run(["age", "gender"], {"input": batch.astype(np.float32)})
    d_gender = d_age = d_batch = 0.0
    for k, (rec, ref) in enumerate(zip(records, tfjs["results"])):
        age_1, gender_1 = session.run(["age", "gender"], {"input": batch[k : k + 1].astype(np.float32)})
        want = np.array([ref["p_female"], ref["p_male"]])
        d_gender = max(d_gender, float(np.abs(gender_1[0] - want).max()))
        d_age = max(d_age, abs(float(age_1[0, 0]) - ref["age"]))
        d_batch = max(d_batch, float(np.abs(gender_b[k] - gender_1[0]).max()), abs(float(age_b[k, 0] - age_1[0, 0])))
        rec["faceapi"] = {"age": ref["age"], "gender": [ref["p_female"], ref["p_male"]]}

    doc = {
        "what": (
            "face-api.js AgeGenderNet run by face-api itself (tfjs CPU backend) on 112x112 RGB crops; "
            "the derived ONNX model must give the same numbers. gender = [P(female), P(male)] "
            "(face-api's own order is male first); age in years."
        ),
        "made_by": "python3 scripts/golden_agegender.py",
        "reference": {"face_api": tfjs["face_api"], "tfjs": tfjs["tfjs"], "backend": tfjs["backend"]},
        "model": {"name": entry["name"], "file": entry["file"], "sha256": entry["sha256"]},
        "crop_rule": (
            "le, re = eye centres, mo = mean of mouth corners (YuNet landmarks, as regard reports them); "
            "d = mean |le-mo|, |re-mo|; side = d / 0.45; top-left = centroid(le, re, mo) - (0.5, 0.43) * side; "
            "chip pixel (c, r) = bilinear sample at (x + c*side/112, y + r*side/112), no pre-filter, "
            "black where the taps leave the image, rounded; images decoded with Pillow"
        ),
        "credits": (
            "crops of fixtures/faces photographs and of a poster composed from them: credits and licences in "
            "fixtures/faces/CREDITS.md (crops of a CC BY-SA photograph are shared under the same licence)"
        ),
        "onnxruntime_vs_faceapi": {
            "onnxruntime": ort.__version__,
            "max_abs_diff_gender": d_gender,
            "max_abs_diff_age_years": d_age,
            "max_abs_diff_batch_vs_single": d_batch,
        },
        "crops": records,
    }
    OUT_JSON.write_text(json.dumps(doc, indent=2) + "\n")
    say(f"{len(records)} crops; max |diff| ONNX Runtime vs face-api: gender {d_gender:.3g}, age {d_age:.3g} years; "
        f"batch vs single {d_batch:.3g}")
    say(f"wrote {OUT_JSON.relative_to(ROOT)} and {OUT_DIR.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
