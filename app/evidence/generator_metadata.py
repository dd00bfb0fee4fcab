"""Metadata that generators write about themselves: Automatic1111 / ComfyUI / NovelAI PNG text chunks,
generator names in EXIF Software or XMP CreatorTool, and the IPTC DigitalSourceType in XMP.

Such metadata is easy to strip, so its absence says nothing; its presence is strong evidence (a camera
does not write a diffusion prompt)."""
from __future__ import annotations

import json
import re

from PIL import Image

from app.evidence import xmp
from app.evidence.exif import exif_software
from app.evidence.findings import Finding
from app.evidence.text import metadata_text

MAX_PROMPT = 300  # characters of a prompt kept in the case (cleaned like any metadata text)
MAX_JSON = 1 << 20  # ComfyUI graphs are tens of KiB; refuse to parse anything absurd
GENERATORS = {  # display name → pattern, matched case-insensitively in Software / CreatorTool / Comment
    "Stable Diffusion": r"stable[\s_-]?diffusion|\bSDXL\b",
    "Midjourney": r"midjourney",
    "DALL·E": r"dall[\s·.-]?e",
    "Adobe Firefly": r"firefly",
    "Google Imagen": r"\bimagen\b",
    "Flux": r"\bflux(\.1)?\b",
    "ComfyUI": r"comfy\s?ui",
    "Automatic1111": r"automatic1111|\bA1111\b",
    "NovelAI": r"novel\s?ai",
    "Leonardo.Ai": r"leonardo(\.ai)?",
    "Ideogram": r"ideogram",
    "Bing Image Creator": r"bing image creator",
    "InvokeAI": r"invoke\s?ai",
    "Fooocus": r"fooocus",
    "Craiyon": r"craiyon",
    "GPT-4o / ChatGPT": r"chatgpt|gpt-4o",
}
_GENERATOR_RES = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in GENERATORS.items()}
_IPTC_SOURCE = {  # IPTC DigitalSourceType term → (strength, points_to, what it means)
    "trainedAlgorithmicMedia": ("strong", "generated", "created by a trained AI model"),
    "compositeWithTrainedAlgorithmicMedia": ("moderate", "generated", "a composite including AI-generated parts"),
    "digitalCapture": ("weak", "camera", "captured by a digital camera"),
}
_A1111_FIELD = re.compile(r'\s*([\w][\w \-/.]*):\s*("(?:\\.|[^"\\])*"|[^,]*)(?:,|$)')


def generator_name(text: str) -> str:
    """The generator a piece of software text names, or ''."""
    return next((name for name, pattern in _GENERATOR_RES.items() if pattern.search(text or "")), "")


def check_generator_metadata(data: bytes, image: Image.Image | None) -> list[Finding]:
    findings: list[Finding] = []
    if image is not None:
        findings += _text_chunks(image.info)
        software = exif_software(image)
        name = generator_name(software)
        if name:
            findings.append(Finding("exif", "generator_software", "strong",
                                    f"EXIF Software names an AI generator: {software[:80]}.",
                                    {"software": software[:200], "generator": name}, "generated"))
    findings += _xmp_findings(data, image)
    return findings


# ---- PNG (and WebP/JPEG comment) text chunks ------------------------------------------------------------
def _text_chunks(info: dict) -> list[Finding]:
    text = {key: value for key, value in info.items() if isinstance(key, str) and isinstance(value, str)}
    findings: list[Finding] = []
    if "parameters" in text:
        details = parse_a1111(text["parameters"])
        findings.append(Finding("png_text", "generator_parameters", "strong",
                                "Generation parameters (prompt, steps, sampler, seed) in a 'parameters' text "
                                "chunk, as Automatic1111-style tools write them.", details, "generated"))
    if "prompt" in text or "workflow" in text:
        details = parse_comfyui(text.get("prompt", ""), text.get("workflow", ""))
        if details:
            findings.append(Finding("png_text", "generator_workflow", "strong",
                                    "A ComfyUI generation graph in the file's 'prompt'/'workflow' text chunks.",
                                    details, "generated"))
    software, comment = text.get("Software", ""), text.get("Comment", "")
    if "novelai" in software.lower() or _is_novelai_comment(comment):
        details = {"software": software[:200], **_novelai_comment(comment)}
        if text.get("Description"):
            details.setdefault("prompt", metadata_text(text["Description"], MAX_PROMPT))
        findings.append(Finding("png_text", "generator_parameters", "strong",
                                "NovelAI generation metadata in the file's text chunks.", details, "generated"))
    return findings


def parse_a1111(parameters: str) -> dict:
    """Prompt, negative prompt and the 'Steps: …, Sampler: …, Seed: …' line of an Automatic1111 chunk."""
    lines = parameters.strip().splitlines()
    settings: dict[str, str] = {}
    if lines and "Steps:" in lines[-1]:
        settings = {key.strip(): value.strip().strip('"') for key, value in _A1111_FIELD.findall(lines.pop())}
    negative = ""
    for index, line in enumerate(lines):
        if line.startswith("Negative prompt:"):
            negative = "\n".join([line[len("Negative prompt:"):].strip(), *lines[index + 1:]])
            lines = lines[:index]
            break
    details = {"prompt": metadata_text("\n".join(lines), MAX_PROMPT)}
    if negative:
        details["negative_prompt"] = metadata_text(negative, MAX_PROMPT)
    wanted = {"Steps": "steps", "Sampler": "sampler", "Seed": "seed", "CFG scale": "cfg_scale", "Size": "size",
              "Model": "model", "Model hash": "model_hash"}
    details.update({name: settings[key][:120] for key, name in wanted.items() if key in settings})
    return details


def parse_comfyui(prompt: str, workflow: str) -> dict:
    """Node types, sampler settings, checkpoint and positive prompt from a ComfyUI API graph."""
    graph = _json(prompt)
    if not isinstance(graph, dict) or not graph:
        return {"workflow": "present"} if isinstance(_json(workflow), dict) else {}
    nodes = [node for node in graph.values() if isinstance(node, dict)]
    details: dict = {"node_types": sorted({str(n.get("class_type", "")) for n in nodes if n.get("class_type")})[:40]}
    for node in nodes:
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        kind = str(node.get("class_type", ""))
        if "Sampler" in kind:
            for key in ("seed", "noise_seed", "steps", "sampler_name", "cfg"):
                if isinstance(inputs.get(key), (int, float, str)):
                    details.setdefault(key, inputs[key])
        if "ckpt_name" in inputs or "unet_name" in inputs:
            details.setdefault("model", str(inputs.get("ckpt_name") or inputs.get("unet_name"))[:120])
        if kind.startswith("CLIPTextEncode") and isinstance(inputs.get("text"), str):
            details.setdefault("prompt", metadata_text(inputs["text"], MAX_PROMPT))
    return details


def _is_novelai_comment(comment: str) -> bool:
    parsed = _json(comment)
    return isinstance(parsed, dict) and {"steps", "sampler", "seed"} <= set(parsed)


def _novelai_comment(comment: str) -> dict:
    parsed = _json(comment)
    if not isinstance(parsed, dict):
        return {}
    details = {key: parsed[key] for key in ("steps", "sampler", "seed", "scale") if
               isinstance(parsed.get(key), (int, float, str))}
    if isinstance(parsed.get("prompt"), str):
        details["prompt"] = metadata_text(parsed["prompt"], MAX_PROMPT)
    return details


# ---- XMP ---------------------------------------------------------------------------------------------
def _xmp_findings(data: bytes, image: Image.Image | None) -> list[Finding]:
    try:
        root = xmp.read_xmp(data, image)
    except Exception as exc:
        return [Finding("xmp", "unreadable_xmp", "info", f"Unreadable XMP packet: {exc}.")]
    if root is None:
        return []
    findings: list[Finding] = []
    for tool in dict.fromkeys(xmp.values_named(root, "CreatorTool")):
        name = generator_name(tool)
        if name:
            findings.append(Finding("xmp", "generator_software", "strong",
                                    f"XMP CreatorTool names an AI generator: {tool[:80]}.",
                                    {"creator_tool": tool[:200], "generator": name}, "generated"))
    for value in dict.fromkeys(xmp.values_named(root, "DigitalSourceType")):
        term = value.rstrip("/").rsplit("/", 1)[-1]
        strength, points_to, meaning = _IPTC_SOURCE.get(term, ("info", "", ""))
        message = (f"XMP DigitalSourceType says the image was {meaning} ({term})." if meaning
                   else f"XMP DigitalSourceType: {term}.")
        findings.append(Finding("xmp", "digital_source_type", strength, message,
                                {"digital_source_type": value[:200]}, points_to))
    return findings


def _json(text: str):
    if not text or len(text) > MAX_JSON:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
