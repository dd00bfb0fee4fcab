"""ONNX image classifiers through onnxruntime: the preprocessing given on import is kept on the card, and
Forensight's P(fake) on real photographs equals onnxruntime's (and the exported torch model's) on the same
preprocessed pixels; the graph explains itself with an occlusion map."""
import hashlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from tests.needs import dependency

ort = dependency("onnxruntime")  # a project dependency: skipped locally, a failure in CI when missing

from models.checkpoints import CheckpointError  # noqa: E402
from models.engine import ScanEngine  # noqa: E402
from models.explain import Explainer  # noqa: E402
from models.library import ModelLibrary  # noqa: E402
from tests.commands import run_cli  # noqa: E402
from tests.conftest import REPO  # noqa: E402

REAL_PHOTOS = sorted((REPO / "resources" / "samples" / "real").glob("*.jpg"))[:3]
GIVEN = {"policy": "resize_center_crop", "size": 32, "resize": 40, "mean": [0.45, 0.5, 0.55],
         "std": [0.2, 0.25, 0.3], "interpolation": "bicubic"}


class TinyNet(nn.Module):
    def __init__(self, outputs: int = 2) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU())
        self.head = nn.Linear(16, outputs)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3))) * 8


def export(model: nn.Module, path, dynamic: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.zeros(1, 3, 32, 32), str(path), input_names=["pixels"],
                          output_names=["logits"], dynamic_axes={"pixels": {0: "n"}} if dynamic else None,
                          dynamo=False)
    return path


def reference_inputs(images) -> torch.Tensor:
    """The preprocessing as given on import, written with torchvision's classic transforms."""
    steps = transforms.Compose([transforms.Resize(40, interpolation=transforms.InterpolationMode.BICUBIC),
                                transforms.CenterCrop(32), transforms.ToTensor(),
                                transforms.Normalize(GIVEN["mean"], GIVEN["std"])])
    return torch.stack([steps(Image.open(p).convert("RGB")) for p in images])


@pytest.mark.parametrize("dynamic", [True, False])
def test_p_fake_equals_onnxruntime_and_torch(home, tmp_path, dynamic):
    net = TinyNet()
    graph = export(net, tmp_path / "detector.onnx", dynamic)
    entry = ModelLibrary().import_path(graph, input_spec=GIVEN)
    card = entry.card
    assert (card.family, card.architecture, card.num_logits, card.weights_file) == ("onnx", "onnx", 2, "model.onnx")
    assert (card.input.policy, card.input.size, card.input.resize, card.input.interpolation) == (
        "resize_center_crop", 32, 40, "bicubic")
    assert card.input.mean == pytest.approx(GIVEN["mean"]) and card.family_config["input_given"] == GIVEN
    assert card.weights_sha256 == hashlib.sha256(graph.read_bytes()).hexdigest()  # the graph itself, unchanged
    crop = tmp_path / "crop.png"
    Image.open(REAL_PHOTOS[2]).convert("RGB").crop((8, 0, 120, 128)).save(crop)
    images = [*REAL_PHOTOS[:2], crop]
    engine = ScanEngine(ModelLibrary().load(card.id), device="cpu", batch_size=3, workers=1)
    ours = np.array([r.p_fake for r in engine.scan(images)])
    pixels = reference_inputs(images)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    runtime = np.concatenate([session.run(None, {"pixels": pixels[i:i + 1].numpy()})[0] for i in range(3)])
    theirs = torch.softmax(torch.from_numpy(runtime), 1)[:, 1].numpy()
    with torch.no_grad():
        torch_p = torch.softmax(net(pixels), 1)[:, 1].numpy()
    print(f"onnx: max |ΔP(fake)| = {np.abs(ours - theirs).max():.1e} (onnxruntime), "
          f"{np.abs(ours - torch_p).max():.1e} (torch)")  # shown with pytest -s
    assert np.abs(ours - theirs).max() < 1e-4 and np.abs(ours - torch_p).max() < 1e-4, (ours, theirs, torch_p)
    assert np.ptp(theirs) > 1e-3


def test_onnx_model_explains_with_an_occlusion_map(home, tmp_path):
    entry = ModelLibrary().import_path(export(TinyNet(1), tmp_path / "one-logit.onnx"), input_spec=GIVEN)
    assert entry.card.num_logits == 1 and entry.card.output == "sigmoid"
    explainer = Explainer(ModelLibrary().load(entry.card.id))
    assert explainer.method == "occlusion"
    heat = explainer.heat_map(Image.open(REAL_PHOTOS[0]).convert("RGB"))
    assert heat.shape == (128, 128) and 0 <= heat.min() and heat.max() == pytest.approx(1.0)
    assert "occlusion maps, not Grad-CAM" in entry.card.limitations


def test_what_was_not_given_is_said_and_bad_graphs_are_refused(home, tmp_path):
    entry = ModelLibrary().import_path(export(TinyNet(), tmp_path / "bare.onnx"))
    assert (entry.card.input.policy, entry.card.input.size) == ("resize", 32)  # the graph's own side
    assert "Not given on import, so assumed: policy resize, mean [0.485, 0.456, 0.406]" in entry.card.limitations
    with pytest.raises(CheckpointError, match="returns 5 values per image"):
        ModelLibrary().import_path(export(TinyNet(5), tmp_path / "five.onnx"))
    with pytest.raises(CheckpointError, match="takes 32×32 pixels, not --size 64"):
        ModelLibrary().import_path(export(TinyNet(), tmp_path / "fixed.onnx", False), input_spec={"size": 64})
    (tmp_path / "text.onnx").write_bytes(b"not a graph at all")
    with pytest.raises(CheckpointError, match="not an ONNX graph onnxruntime can run"):
        ModelLibrary().import_path(tmp_path / "text.onnx")
    assert [e.card.id for e in ModelLibrary().entries()] == ["bare"]


def test_cli_import_with_preprocessing_options(home, tmp_path):
    graph = export(TinyNet(), tmp_path / "cli.onnx")
    run = run_cli("models", "import", graph, "--policy", "resize", "--size", "32", "--mean", "0.5",
                  "--std", "0.25,0.25,0.25", "--interpolation", "bicubic", home=home)
    assert run.returncode == 0, run.stderr
    assert "Imported cli [onnx]: onnx, 2 logit(s) (softmax), input resize 32" in run.stdout
    card = ModelLibrary(home=home, shipped_dir=home / "none").get("cli").card
    assert card.input.mean == (0.5, 0.5, 0.5) and card.input.std == (0.25, 0.25, 0.25)
    assert card.input.interpolation == "bicubic"
