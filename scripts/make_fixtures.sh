#!/bin/sh
# Regenerate fixtures/posters, fixtures/trailers and fixtures/truth.json (see fixtures/README.md).
# Makes a venv in .cache/fixtures-venv with the Pillow and numpy versions the committed fixtures
# were made with (JPEG bytes depend on Pillow's libjpeg), then runs make_fixtures.py with the
# given arguments. Needs python3 >= 3.11 with venv, pip access to PyPI, and ffmpeg with libx264.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.cache/fixtures-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pillow==13.0.0 numpy==2.4.6
fi
command -v ffmpeg >/dev/null || { echo "make_fixtures.sh: ffmpeg not found (needed for trailers)" >&2; exit 1; }
exec "$venv/bin/python" "$root/scripts/make_fixtures.py" "$@"
