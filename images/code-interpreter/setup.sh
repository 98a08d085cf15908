#!/usr/bin/env bash
# Run by scripts/build-base-image for podgate/code-interpreter (ROOTFS: the image's root, WHEELS:
# the wheels scripts/build-code-interpreter-image downloaded from PyPI): a venv at
# /opt/code-interpreter with jupyter_client and ipykernel installed from those wheels (no network
# inside the chroot), and podgate's server at /opt/podgate/code-interpreter.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$ROOTFS/tmp/wheels" "$ROOTFS/opt/podgate"
cp "$WHEELS"/*.whl "$ROOTFS/tmp/wheels/"
chroot "$ROOTFS" python3 -m venv /opt/code-interpreter
chroot "$ROOTFS" /opt/code-interpreter/bin/pip install --quiet --no-index --find-links /tmp/wheels \
  --disable-pip-version-check jupyter_client ipykernel >&2
rm -rf "$ROOTFS/tmp/wheels" "$ROOTFS/root/.cache"
install -m 0644 "$here/server.py" "$ROOTFS/opt/podgate/code-interpreter.py"
