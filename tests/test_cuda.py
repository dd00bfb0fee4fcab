"""The CUDA path, checked on a machine with an NVIDIA GPU (skipped elsewhere): device choice, AMP inference that
agrees with the CPU, training with AMP, Grad-CAM on the GPU, and the `scan` command naming the GPU it used."""
import pytest
import torch

from models.card import ModelCard, default_input_spec
from models.device import describe_device, select_device
from models.engine import ScanEngine
from models.explain import Explainer
from models.library import LoadedModel, ModelLibrary
from models.registry import build_model
from tests import images
from tests.commands import run_cli
from tests.conftest import REPO
from tests.datasets import make_trace_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)")

STARTER = "starter-effnet-lite0"
SAMPLES = REPO / "resources" / "samples"
AMP_TOLERANCE = 0.02  # float16 activations vs float32 on the CPU, in P(fake)


@pytest.fixture
def starter(tmp_path, monkeypatch):
    monkeypatch.setenv("FORENSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FORENSIGHT_SHIPPED_MODELS", raising=False)
    return ModelLibrary().load(STARTER)


def random_model(architecture: str, num_logits: int = 2, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    card = ModelCard(id=f"gpu-{architecture}", name=architecture, architecture=architecture, num_logits=num_logits,
                     input=default_input_spec(architecture))
    return LoadedModel(card, build_model(architecture, num_logits).eval())


def scores(engine: ScanEngine, paths) -> dict[str, float]:
    results = list(engine.scan(paths))
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    return {r.path: r.p_fake for r in results}


def test_auto_picks_the_gpu_and_names_it():
    device = select_device("auto")
    assert device.type == "cuda"
    assert torch.cuda.get_device_name(device) in describe_device(device)
    assert select_device("cuda:0").index == 0


def test_starter_on_the_gpu_with_amp_agrees_with_the_cpu(starter):
    paths = sorted(p for p in SAMPLES.rglob("*") if p.is_file())
    cpu = scores(ScanEngine(starter, device="cpu"), paths)
    gpu_engine = ScanEngine(starter, device="cuda")
    assert gpu_engine.amp and next(gpu_engine.module.parameters()).is_cuda
    gpu = scores(gpu_engine, paths)
    worst = max(abs(cpu[p] - gpu[p]) for p in cpu)
    assert worst < AMP_TOLERANCE, worst
    labels_cpu = [gpu_engine.thresholds.label(cpu[p]) for p in sorted(cpu)]
    labels_gpu = [gpu_engine.thresholds.label(gpu[p]) for p in sorted(gpu)]
    # a label may only differ where the CPU score sits within the tolerance of a band edge
    edges = (gpu_engine.thresholds.low, gpu_engine.thresholds.high, gpu_engine.thresholds.threshold)
    for path, a, b in zip(sorted(cpu), labels_cpu, labels_gpu):
        assert a == b or min(abs(cpu[path] - e) for e in edges) < AMP_TOLERANCE, path


@pytest.mark.parametrize("architecture", ["resnet50", "convnextv2_tiny", "vit_base_patch16_224"])
def test_channels_last_amp_matches_float32(architecture, tmp_path):
    model = random_model(architecture)
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i in range(20):
        paths.append(folder / f"{i}.jpg")
        images.gradient(300 + 17 * i, 260, seed=i).save(paths[-1], quality=92)
    fp32 = scores(ScanEngine(model, device="cuda", amp=False), paths)
    amp = scores(ScanEngine(model, device="cuda", amp=True), paths)
    worst = max(abs(fp32[str(p)] - amp[str(p)]) for p in paths)
    assert worst < AMP_TOLERANCE, worst


def test_training_with_amp_on_the_gpu_learns(tmp_path):
    from training.recipes import get_recipe
    from training.trainer import fit

    data = make_trace_dataset(tmp_path / "trace", per_class=150)
    recipe = get_recipe("cifake_cnn").with_overrides(dict(epochs=10, batch_size=16, workers=2, lr=1e-3,
                                                          target_accuracy=None))
    assert recipe.amp
    result = fit(recipe, data, run_dir=tmp_path / "run", device="cuda")
    assert result.status == "finished"
    assert result.card.provenance["device"].startswith("cuda")
    assert result.card.metrics["validation"]["accuracy"] >= 0.85, result.history
    assert all(t.device.type == "cpu" for t in result.state.values())  # the library stores CPU tensors
    entry = ModelLibrary(home=tmp_path / "home", shipped_dir=tmp_path / "none").add(result.card, result.state)
    assert entry.weights_path.is_file()


def test_deterministic_training_on_the_gpu_repeats(tmp_path):
    from training.recipes import get_recipe
    from training.trainer import fit

    data = make_trace_dataset(tmp_path / "trace", per_class=60)
    recipe = get_recipe("cifake_cnn").with_overrides(dict(epochs=1, batch_size=16, workers=0, deterministic=True,
                                                          target_accuracy=None))
    a = fit(recipe, data, run_dir=tmp_path / "a", device="cuda")
    b = fit(recipe, data, run_dir=tmp_path / "b", device="cuda")
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)


@pytest.mark.parametrize("architecture", ["resnet50", "vit_base_patch16_224"])
def test_grad_cam_on_the_gpu_matches_the_cpu(architecture):
    model = random_model(architecture, seed=3)
    image = images.gradient(320, 240, seed=4)
    on_cpu = Explainer(model, "cpu").heat_map(image)
    on_gpu = Explainer(model, "cuda").heat_map(image)
    assert on_gpu.shape == (240, 320)
    assert abs(on_cpu - on_gpu).max() < 0.05


def test_scan_command_reports_the_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("FORENSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FORENSIGHT_SHIPPED_MODELS", raising=False)
    run = run_cli("scan", SAMPLES, "--recursive", "--device", "cuda", "--csv", tmp_path / "out.csv")
    assert run.returncode == 0, run.stderr
    assert torch.cuda.get_device_name(0) in run.stderr
    assert (tmp_path / "out.csv").read_text().count("\n") == 1 + sum(1 for p in SAMPLES.rglob("*") if p.is_file())


def test_report_grad_cam_runs_on_the_gpu(tmp_path, monkeypatch):
    from app.case.store import Case
    from app.report import build_report
    from app.report.pictures import GradCam
    from app.services.scanning import list_entries, run_scan

    monkeypatch.setenv("FORENSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FORENSIGHT_SHIPPED_MODELS", raising=False)
    library = ModelLibrary()
    cam = GradCam(STARTER, library.get(STARTER).card.weights_sha256, "cuda")
    assert cam.where == f"computed on CUDA ({torch.cuda.get_device_name(0)}) when this report was built"
    assert next(cam.explainer.module.parameters()).is_cuda
    case_path = tmp_path / "case.sqlite"
    with Case(case_path) as case:
        run_scan(case, ScanEngine(library.load(STARTER), device="cuda"), list_entries([SAMPLES], True))
    info = build_report(case_path, tmp_path / "gpu.pdf", device="cuda")
    assert info.flagged > 0 and info.pages >= 5
