"""C2PA Content Credentials, read with c2pa-python (the C2PA reference implementation): whether a manifest is
embedded, whether it validates, who made the claim, the recorded actions and ingredients, and any statement
that AI generated the content. Nothing is fetched from the network (remote manifests and OCSP are off)."""
from __future__ import annotations

import io
import json

from PIL import Image

from app.evidence.findings import Finding

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
         "GIF": "image/gif", "AVIF": "image/avif", "HEIF": "image/heif", "JXL": "image/jxl"}
_AI_SOURCES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


def check_c2pa(data: bytes, image: Image.Image | None) -> list[Finding]:
    try:
        import c2pa
    except Exception as exc:  # the native library may be missing on this platform
        return [Finding("c2pa", "c2pa_unavailable", "info", f"C2PA check unavailable ({type(exc).__name__}).")]
    mime = _MIME.get(image.format if image is not None else "", "")
    if not mime:
        return [Finding("c2pa", "no_c2pa", "info", "No Content Credentials (format not checked for C2PA).")]
    context = c2pa.Context(settings=c2pa.Settings.from_dict(_OFFLINE))
    try:
        try:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), context=context)
        except c2pa.C2paError as exc:  # a manifest is there but cannot even be parsed
            return [Finding("c2pa", "c2pa_invalid", "moderate",
                            f"Content Credentials present but unreadable: {_first_line(exc)}.",
                            {"error": _first_line(exc)})]
        if reader is None:
            return [Finding("c2pa", "no_c2pa", "info",
                            "No Content Credentials (C2PA) embedded: most files have none.")]
        with reader:
            state = reader.get_validation_state() or ""
            store = json.loads(reader.json())
        return describe_store(store, state)
    finally:
        context.close()


def describe_store(store: dict, state: str) -> list[Finding]:
    """Findings for a parsed manifest store and its validation state (Invalid, Valid or Trusted)."""
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    failures = [s for s in store.get("validation_status") or [] if isinstance(s, dict)]
    problems = [s for s in failures if s.get("code") != "signingCredential.untrusted"]
    actions = _actions(manifest)
    details = {
        "validation_state": state,
        "claim_generator": _claim_generator(manifest),
        "signer": (manifest.get("signature_info") or {}).get("common_name", ""),
        "issuer": (manifest.get("signature_info") or {}).get("issuer", ""),
        "actions": [a.get("action", "") for a in actions][:20],
        "ingredients": [i.get("title", "") for i in manifest.get("ingredients") or [] if isinstance(i, dict)][:20],
        "validation_errors": [f"{s.get('code')}: {s.get('explanation', '')}"[:200] for s in failures][:10],
    }
    findings: list[Finding] = []
    if state == "Invalid" or problems:
        findings.append(Finding("c2pa", "c2pa_invalid", "moderate",
                                "Content Credentials fail validation: the file was changed after signing or the "
                                f"manifest is damaged ({', '.join(str(s.get('code')) for s in problems[:3])}).",
                                details))
    else:
        trust = ("signer on a trust list" if state == "Trusted"
                 else "signature intact, but the signer is not on a trust list, so anyone could have made it")
        findings.append(Finding("c2pa", "c2pa_valid", "info",
                                f"Content Credentials by {details['claim_generator'] or 'an unnamed tool'}: {trust}.",
                                details))
    sources = [str(a.get("digitalSourceType", "")) for a in actions]
    ai = next((s for s in sources if s.rstrip("/").rsplit("/", 1)[-1] in _AI_SOURCES), "")
    if ai:
        composite = ai.endswith("compositeWithTrainedAlgorithmicMedia")
        # A claim in a manifest that fails validation still says what the signer asserted; weigh it less.
        strength = "moderate" if composite or findings[0].kind == "c2pa_invalid" else "strong"
        findings.append(Finding("c2pa", "c2pa_ai_generated", strength,
                                "Content Credentials record that AI generated "
                                + ("part of " if composite else "") + "this image.",
                                {"digital_source_type": ai, "actions": details["actions"]}, "generated"))
    return findings


def _actions(manifest: dict) -> list[dict]:
    found: list[dict] = []
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            found += [a for a in (assertion.get("data") or {}).get("actions") or [] if isinstance(a, dict)]
    return found


def _claim_generator(manifest: dict) -> str:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict):
        return " ".join(str(info[0].get(key, "")) for key in ("name", "version")).strip()
    return str(manifest.get("claim_generator", ""))


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
