"""Run a command as on an x86-64 CPU with AVX2 but no AVX-512, VNNI or AMX, at native speed (issue 10).

  python tools/avx2_only.py COMMAND [ARGS...]        # e.g. python tools/avx2_only.py .venv/bin/python -c ...

Builds tools/avx2_only.c with gcc (once, into the user's cache) and preloads it: CPUID then reports no AVX-512,
VNNI or AMX, so onnxruntime, numpy and torch pick the kernels an AVX2-only CPU (Haswell, AMD Zen 2) runs. Unlike
`qemu-x86_64 -cpu Haswell`, which emulates such a CPU 10-50 times slower, the kernels run at this CPU's speed, so
int8 against fp32 on AVX2 kernels can be timed. Needs Linux's CPUID faulting (`cpuid_fault` in /proc/cpuinfo:
Intel CPUs since Ivy Bridge and many VMs on them; look for the flag elsewhere), and the
Python it runs without faulthandler (pytest: `-p no:faulthandler`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("avx2_only.c")


def has_cpuid_faulting() -> bool:
    try:
        return "cpuid_fault" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def shim() -> Path:
    """The library, built once into the user's cache (rebuilt when the source changes); where that cannot be
    written, built afresh into a private temporary folder (never a shared, predictable path)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge_rap"
        cache.mkdir(parents=True, exist_ok=True)
        writable = os.access(cache, os.W_OK)
    except (OSError, RuntimeError):
        writable = False
    if not writable:
        cache = Path(tempfile.mkdtemp(prefix="avx2_only-"))
    built = cache / f"avx2_only-{digest}.so"
    if not built.exists():
        if not shutil.which("gcc"):
            raise SystemExit("avx2_only: needs gcc (apt-get install gcc)")
        partial = built.with_suffix(f".{os.getpid()}.tmp")
        done = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(partial), str(SOURCE)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"avx2_only: gcc could not build {SOURCE.name}: "
                             f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        partial.replace(built)  # whole or not at all, should two builds race
    return built


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if not has_cpuid_faulting():
        print("avx2_only: this CPU has no CPUID faulting (no cpuid_fault in /proc/cpuinfo)", file=sys.stderr)
        return 2
    env = dict(os.environ, LD_PRELOAD=":".join(filter(None, [str(shim()), os.environ.get("LD_PRELOAD")])))
    env.pop("PYTHONFAULTHANDLER", None)  # its handler would take the CPUID trap and end the process
    os.execvpe(sys.argv[1], sys.argv[1:], env)


if __name__ == "__main__":
    sys.exit(main())
