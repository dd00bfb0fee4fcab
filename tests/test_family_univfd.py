"""UnivFD (Ojha et al., CVPR 2023): the authors' linear head on a CLIP ViT image tower, imported from the two files
a user downloads, compared with a reference forward written here from the authors' code.

References (github.com/WisconsinAIVision/UniversalFakeDetect):
* models/clip_models.py: `features = self.model.encode_image(x)` (CLIP ViT-L/14, 768-d), `self.fc =
  nn.Linear(768, 1)`; validate.py: `model.fc.load_state_dict(torch.load(ckpt))`, `model(x).sigmoid()`.
* validate.py RealFakeDataset: `transforms.CenterCrop(224)`, `ToTensor()`, `Normalize(MEAN['clip'],
  STD['clip'])`, no resize.
* The tower file is OpenCLIP's container for OpenAI's weights (open_clip_pytorch_model.bin: the CLIP model's state
  dict, QuickGELU). The test writes a tiny random CLIP with open_clip itself (width 128, 2 layers, patch 14,
  224×224, 768-d embedding) so that the head keeps the authors' exact shapes.
"""
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from tests.needs import dependency

open_clip = dependency("open_clip")  # a project dependency: skipped locally, a failure in CI when missing

from models.checkpoints import CheckpointError  # noqa: E402
from models.engine import ScanEngine  # noqa: E402
from models.explain import Explainer  # noqa: E402
from models.library import ModelLibrary  # noqa: E402
from tests.commands import run_in_process, scan_and_report  # noqa: E402
from tests.conftest import REPO  # noqa: E402

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
SKLEARN_IMAGES = Path(__import__("sklearn").__file__).parent / "datasets" / "images"


def tiny_clip(seed: int = 0, embed_dim: int = 768, quick_gelu: bool = True):
    torch.manual_seed(seed)
    return open_clip.CLIP(embed_dim=embed_dim, quick_gelu=quick_gelu,
                          vision_cfg=dict(layers=2, width=128, patch_size=14, image_size=224),
                          text_cfg=dict(context_length=8, vocab_size=100, width=64, heads=1, layers=1)).eval()


def authors_files(folder: Path, seed: int = 0) -> tuple[Path, Path, torch.nn.Module, torch.nn.Linear]:
    """fc_weights.pth as the authors publish it and an OpenCLIP-keyed tower file."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = tiny_clip(seed)
    torch.save(clip.state_dict(), folder / "open_clip_pytorch_model.bin")
    torch.manual_seed(seed + 1)
    fc = torch.nn.Linear(768, 1)
    with torch.no_grad():  # a random head on random features is near 0.5 everywhere: make it decisive
        fc.weight.mul_(4.0)
    torch.save(fc.state_dict(), folder / "fc_weights.pth")
    return folder / "fc_weights.pth", folder / "open_clip_pytorch_model.bin", clip, fc


def real_images(tmp_path: Path) -> list[Path]:
    """Real photographs: two 640×427 JPEGs, an odd-sized PNG crop (centre-crop rounding) and a 128×128 shipped
    sample (smaller than 224: padded with black, as torchvision's CenterCrop pads)."""
    odd = tmp_path / "odd.png"
    Image.open(SKLEARN_IMAGES / "china.jpg").convert("RGB").crop((31, 17, 31 + 333, 17 + 251)).save(odd)
    small = sorted((REPO / "resources" / "samples" / "real").glob("*.jpg"))[0]
    return [SKLEARN_IMAGES / "china.jpg", SKLEARN_IMAGES / "flower.jpg", odd, small]


def reference_p_fake(clip, fc, images: list[Path]) -> np.ndarray:
    """validate.py's transform and clip_models.py's forward: sigmoid(fc(encode_image(x)))."""
    transform = transforms.Compose([transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD)])
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])
    with torch.no_grad():
        return torch.sigmoid(fc(clip.encode_image(x))).flatten().numpy()


def forensight_p_fake(model_id: str, images: list[Path]) -> np.ndarray:
    engine = ScanEngine(ModelLibrary().load(model_id), device="cpu", batch_size=2, workers=1)
    scores = {r.path: r.p_fake for r in engine.scan(images)}
    return np.array([scores[str(p)] for p in images])


def test_p_fake_equals_the_authors_forward(home, tmp_path):
    head, tower, clip, fc = authors_files(tmp_path / "downloads")
    entry = ModelLibrary().import_path(head, tower=tower)
    card = entry.card
    assert (card.id, card.family, card.architecture, card.num_logits) == ("univfd", "univfd", "tower_linear", 1)
    assert (card.input.policy, card.input.size, card.input.small_image) == ("center_crop", 224, "pad")
    assert card.input.mean == pytest.approx(CLIP_MEAN) and card.input.std == pytest.approx(CLIP_STD)
    config = card.family_config["tower"]  # read from the tensors' shapes, not from the test
    assert {k: config[k] for k in ("width", "layers", "heads", "patch_size", "image_size", "output_dim",
                                   "activation")} == {"width": 128, "layers": 2, "heads": 2, "patch_size": 14,
                                                      "image_size": 224, "output_dim": 768,
                                                      "activation": "quick_gelu"}
    images = real_images(tmp_path)
    ours, theirs = forensight_p_fake(card.id, images), reference_p_fake(clip, fc, images)
    print(f"univfd: max |ΔP(fake)| = {np.abs(ours - theirs).max():.1e}")  # shown with pytest -s
    assert np.abs(ours - theirs).max() < 1e-4, (ours, theirs)
    assert np.ptp(theirs) > 1e-2, "the photos must score differently for the comparison to mean something"
    # one safetensors file (tower + head), the card from the catalogue with both files' SHA-256
    assert sorted(p.name for p in entry.directory.iterdir()) == ["card.json", "weights.safetensors"]
    assert card.provenance["published_file"] == "fc_weights.pth" and "Ojha" in card.provenance["paper"]
    assert card.provenance["tower_file"] == "open_clip_pytorch_model.bin"
    assert len(card.provenance["source_sha256"]) == len(card.provenance["tower_sha256"]) == 64
    assert "not CLIP ViT-L/14" in card.description  # the tiny tower is said to be not the authors'


def test_univfd_explains_on_the_vit_tokens_and_reports(home, tmp_path):
    head, tower, _, _ = authors_files(tmp_path / "downloads")
    card = ModelLibrary().import_path(head, tower=tower).card
    assert card.family_config["explain"] == {"method": "gradcam", "layer": "tower.transformer.resblocks.1.ln_1",
                                             "tokens": True}
    explainer = Explainer(ModelLibrary().load(card.id))
    image = Image.open(SKLEARN_IMAGES / "china.jpg").convert("RGB")
    heat = explainer.heat_map(image)
    assert heat.shape == (427, 640) and 0 <= heat.min() and heat.max() <= 1
    inside = heat[102:326, 208:432]  # the centre 224×224 crop the model saw; nothing outside it
    assert np.ptp(inside) > 0.05 and heat[:, :200].max() == 0

    info = scan_and_report(card.id, [SKLEARN_IMAGES / "china.jpg", SKLEARN_IMAGES / "flower.jpg"], tmp_path)
    assert info.files == 2
    assert (tmp_path / "report.pdf").stat().st_size > 10_000


def test_cli_imports_head_and_tower_and_refuses_a_head_alone(home, tmp_path, capsys):
    head, tower, _, _ = authors_files(tmp_path / "downloads")
    code, _, err = run_in_process(capsys, "models", "import", head)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "fc_weights.pth is a UnivFD linear head (768 features → 1 logit)" in err and "--tower" in err
    code, out, err = run_in_process(capsys, "models", "import", head, "--tower", tower, "--id", "ufd")
    assert code == 0, err
    assert "Imported ufd [univfd]: tower_linear, 1 logit(s) (sigmoid), input center_crop 224" in out
    code, out, _ = run_in_process(capsys, "models", "catalogue")
    assert "[importable; ufd]" in out


def test_towers_that_fit_no_clip_vision_tower_are_refused_in_one_line(home, tmp_path, capsys):
    head, tower, clip, _ = authors_files(tmp_path / "downloads")
    state = clip.state_dict()
    partial = {k: v for k, v in state.items() if k not in ("visual.proj", "visual.ln_post.weight")}
    torch.save(partial, tmp_path / "partial.bin")
    with pytest.raises(CheckpointError, match=r"partial.bin is not a complete CLIP ViT image tower: missing "
                                              r"visual.proj, visual.ln_post.weight"):
        ModelLibrary().import_path(head, tower=tmp_path / "partial.bin")
    no_block = {k: v for k, v in state.items() if not k.startswith("visual.transformer.resblocks.1.attn.")}
    torch.save(no_block, tmp_path / "no_block.bin")
    code, _, err = run_in_process(capsys, "models", "import", head, "--tower", tmp_path / "no_block.bin")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "does not fit a CLIP ViT image tower of width 128, 2 layers: 4 tensor(s) missing (e.g. " \
           "transformer.resblocks.1.attn.in_proj_weight" in err
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1, 2048)}, tmp_path / "cnn.pth")
    with pytest.raises(CheckpointError, match=r"cnn.pth is not a complete CLIP ViT image tower: missing "
                                              r"visual.class_embedding, visual.positional_embedding, visual.proj"):
        ModelLibrary().import_path(head, tower=tmp_path / "cnn.pth")
    torch.save(tiny_clip(embed_dim=512).state_dict(), tmp_path / "vit_b.bin")  # a tower of another width
    with pytest.raises(CheckpointError, match=r"fc_weights.pth takes 768 features but vit_b.bin gives 512"):
        ModelLibrary().import_path(head, tower=tmp_path / "vit_b.bin")
    assert ModelLibrary().entries() == []


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated: only to write the archive
def test_openai_torchscript_archive_is_refused_without_running_it(home, tmp_path):
    head, _, _, _ = authors_files(tmp_path / "downloads")
    script = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(script, tmp_path / "ViT-L-14.pt")
    assert any("/code/" in n for n in zipfile.ZipFile(tmp_path / "ViT-L-14.pt").namelist())
    with pytest.raises(CheckpointError, match=r"ViT-L-14.pt is a TorchScript archive .*never runs code .*"
                                              r"open_clip_pytorch_model.bin or open_clip_model.safetensors"):
        ModelLibrary().import_path(head, tower=tmp_path / "ViT-L-14.pt")


def test_safetensors_tower_and_gelu_tower_of_openclip(home, tmp_path):
    """open_clip_model.safetensors holds the same state dict; a tower named without 'openai' is taken as one of
    OpenCLIP's own (GELU) — both go through the same shape inference."""
    from safetensors.torch import save_file

    from models.families.towers import read_tower

    clip = tiny_clip(seed=3, quick_gelu=False)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(tmp_path / "open_clip_model.safetensors"))
    visual, config, sha = read_tower(tmp_path / "open_clip_model.safetensors")
    assert config["activation"] == "gelu" and config["layers"] == 2 and len(sha) == 64
    from models.families.towers import build_tower

    tower = build_tower(config).eval()
    tower.load_state_dict(visual)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(tower(x), clip.encode_image(x), atol=1e-5)


def test_add_a_known_detector_imports_the_head_with_its_tower(qtbot, home, tmp_path):
    from app.ui.models.model_manager import ModelManagerDialog

    head, tower, _, _ = authors_files(tmp_path / "downloads")
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    known = manager.show_known_detectors()
    known.detector_list.setCurrentRow(list(known.rows).index("univfd"))
    assert known.file_button.isEnabled() and "fc_weights.pth" in known.details.toPlainText()
    with qtbot.waitSignal(manager.import_finished, timeout=60_000) as finished:
        known.import_download(head, tower=tower)  # the GUI asks for the tower file after the head
    assert finished.args == [True]
    assert known.statuses()["univfd"] == "installed: univfd"
