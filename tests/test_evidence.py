"""Evidence checks on files the tests make with known metadata, and their path through a scan into the case
and the CSV (without ever changing an evidence file)."""
import csv
import datetime
import io
import json
import os

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.case.store import Case
from app.case.csv_export import COLUMNS, write_csv
from app.evidence import analyse
from app.services.scanning import list_entries, run_scan
from models.engine import ScanEngine
from models.library import ModelLibrary
from tests.needs import dependency  # c2pa: a project dependency, skipped locally, a failure in CI when missing

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def kinds(findings):
    return {f.kind: f for f in findings}


def jpeg(quality=90, **save) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (120, 60, 30)).save(buffer, "JPEG", quality=quality, **save)
    return buffer.getvalue()


def png(info: PngInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (20, 160, 90)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def camera_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS 5D Mark IV", "Adobe Photoshop 25.1"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    exif.get_ifd(0x8769)[0x9011] = "+02:00"  # OffsetTimeOriginal
    return jpeg(exif=exif)


XMP = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       f'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
       f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Midjourney v6">'
       f'<Iptc4xmpExt:DigitalSourceType>{AI_SOURCE}</Iptc4xmpExt:DigitalSourceType>'
       f'</rdf:Description></rdf:RDF></x:xmpmeta>').encode()


# ---- single checks ---------------------------------------------------------------------------------
def test_camera_exif_is_weak_camera_evidence_with_its_facts():
    found = kinds(analyse(camera_jpeg(), "cam.jpg"))
    camera = found["camera"]
    assert (camera.strength, camera.points_to) == ("weak", "camera") and "forged" in camera.message
    assert camera.details["camera"] == "Canon EOS 5D Mark IV"
    assert camera.details["captured"] == "2024:05:06 07:08:09 +02:00"
    assert found["resaved_by_editor"].details["editor"] == "Adobe Photoshop"
    assert "generator_software" not in found


def test_no_camera_data_is_weak_and_neutral():
    finding = kinds(analyse(png(), "plain.png"))["no_camera_data"]
    assert (finding.strength, finding.points_to) == ("weak", "")


def test_automatic1111_parameters_are_strong_generated_evidence():
    info = PngInfo()
    info.add_text("parameters", "a red fox in the snow, " + "detailed " * 60 + "\nNegative prompt: blurry\n"
                  'Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 424242, Size: 512x512, Model: "sd, xl"')
    finding = kinds(analyse(png(info), "a1111.png"))["generator_parameters"]
    assert (finding.strength, finding.points_to) == ("strong", "generated")
    details = finding.details
    assert details["steps"] == "30" and details["sampler"] == "DPM++ 2M Karras" and details["seed"] == "424242"
    assert details["model"] == "sd, xl" and details["negative_prompt"] == "blurry"
    assert details["prompt"].startswith("a red fox") and len(details["prompt"]) <= 300


def test_comfyui_graph_is_strong_generated_evidence():
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 77, "steps": 25, "sampler_name": "euler"}},
             "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk"}}}
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    finding = kinds(analyse(png(info), "comfy.png"))["generator_workflow"]
    assert (finding.strength, finding.points_to) == ("strong", "generated")
    assert finding.details["seed"] == 77 and finding.details["model"] == "flux1-dev.safetensors"
    assert finding.details["prompt"] == "a lighthouse at dusk" and "KSampler" in finding.details["node_types"]


@pytest.mark.parametrize("where", ["jpeg", "png"])
def test_xmp_digital_source_type_and_creator_tool(where):
    if where == "jpeg":
        data = jpeg(xmp=XMP)
    else:
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode(), zip=True)  # compressed: not findable in raw bytes
        data = png(info)
    found = [f for f in analyse(data, "x") if f.source == "xmp"]
    assert {(f.kind, f.strength, f.points_to) for f in found} == {
        ("digital_source_type", "strong", "generated"), ("generator_software", "strong", "generated")}


def test_xmp_with_entities_is_refused_not_expanded():
    evil = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x></x:xmpmeta>')
    found = kinds(analyse(jpeg(xmp=evil), "evil.jpg"))
    assert found["unreadable_xmp"].strength == "info"


def test_broken_exif_is_an_info_finding_not_an_exception():
    data = jpeg()
    broken = data[:2] + b"\xff\xe1\x00\x12Exif\x00\x00not a tiff" + data[2:]  # an APP1 segment of garbage
    found = kinds(analyse(broken, "broken.jpg"))
    assert found["unreadable_exif"].strength == "info"
    assert "jpeg_quality" in found  # the other checks still ran


def test_jpeg_quality_and_standard_tables():
    finding = kinds(analyse(jpeg(quality=75), "q75.jpg"))["jpeg_quality"]
    assert finding.details == {"quality": 75, "standard_tables": True, "tables": 2}


def test_not_an_image_and_failing_checks_never_raise(monkeypatch):
    assert kinds(analyse(b"\x00" * 100, "junk.bin"))["not_an_image"].strength == "info"
    import app.evidence.jpeg_facts as jpeg_facts

    monkeypatch.setattr(jpeg_facts, "estimate_jpeg_quality", lambda q: 1 / 0)
    failed = kinds(analyse(jpeg(), "x.jpg"))["check_failed"]
    assert failed.strength == "info" and "JPEG facts" in failed.message


# ---- C2PA ------------------------------------------------------------------------------------------
def _test_signer():
    """A throwaway ES256 key with a CA-issued certificate (c2pa refuses self-signed end-entity certs)."""
    c2pa = dependency("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Forensight tests")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("Test signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return c2pa, c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))


@pytest.fixture(scope="module")
def signed_jpeg() -> bytes:
    c2pa, signer = _test_signer()
    manifest = {"claim_generator_info": [{"name": "forensight-test", "version": "1.0"}], "title": "gen.jpg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": AI_SOURCE}]}}]}
    output = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(jpeg()), output)
    return output.getvalue()


def test_signed_c2pa_manifest_is_read_and_validated(signed_jpeg):
    found = kinds(analyse(signed_jpeg, "signed.jpg"))
    valid = found["c2pa_valid"]
    assert valid.details["validation_state"] == "Valid" and valid.details["actions"] == ["c2pa.created"]
    assert valid.details["claim_generator"] == "forensight-test 1.0" and "trust list" in valid.message
    ai = found["c2pa_ai_generated"]
    assert (ai.strength, ai.points_to) == ("strong", "generated")


def test_tampered_c2pa_file_is_invalid(signed_jpeg):
    tampered = bytearray(signed_jpeg)
    for offset in (-300, -200):  # inside the entropy-coded image data, after the manifest
        tampered[offset] ^= 0xFF
    found = kinds(analyse(bytes(tampered), "tampered.jpg"))
    invalid = found["c2pa_invalid"]
    assert (invalid.strength, invalid.points_to) == ("moderate", "")
    assert any("dataHash.mismatch" in e for e in invalid.details["validation_errors"])
    assert found["c2pa_ai_generated"].strength == "moderate"  # a broken manifest's claims weigh less


def test_unsigned_file_has_no_content_credentials():
    dependency("c2pa")  # without it the finding is c2pa_unavailable, as on some platforms
    assert kinds(analyse(jpeg(), "plain.jpg"))["no_c2pa"].strength == "info"


# ---- through a scan --------------------------------------------------------------------------------
def _evidence_folder(tmp_path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    (folder / "camera.jpg").write_bytes(camera_jpeg())
    (folder / "a1111.png").write_bytes(png(info))
    (folder / "xmp.jpg").write_bytes(jpeg(quality=75, xmp=XMP))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    for path in folder.iterdir():
        os.utime(path, (1_600_000_000, 1_600_000_000))
        path.chmod(0o444)  # read-only, as evidence should be: a write attempt would fail the scan loudly
    return folder


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_scan_records_evidence_and_csv_has_it_without_touching_files(tiny_model, tmp_path):
    folder = _evidence_folder(tmp_path)
    before = _snapshot(folder)
    case = Case(tmp_path / "case.sqlite")
    engine = ScanEngine(ModelLibrary().load("tiny"), device="cpu", batch_size=2, workers=2)
    entries = list_entries([folder], recursive=False)
    run_scan(case, engine, entries)
    rows = {os.path.basename(r.path): r for r in case.rows()}
    by_file = {name: kinds(case.evidence_for(row.file_id)) for name, row in rows.items()}
    assert by_file["camera.jpg"]["camera"].details["camera"] == "Canon EOS 5D Mark IV"
    assert "generator_parameters" in by_file["a1111.png"]
    assert by_file["xmp.jpg"]["digital_source_type"].points_to == "generated"
    assert rows["broken.jpg"].error and "not_an_image" in by_file["broken.jpg"]  # evidence even when undecodable

    case.record_evidence(rows["a1111.png"].path, rows["a1111.png"].sha256, [])  # a re-scan reuses the score
    run_scan(case, engine, entries)                                              # and still re-checks evidence
    assert "generator_parameters" in kinds(case.evidence_for(rows["a1111.png"].file_id))

    out = tmp_path / "out.csv"
    assert write_csv(case.rows(), out, case.evidence_for) == 4
    with open(out, encoding="utf-8", newline="") as handle:
        table = {os.path.basename(r["path"]): r for r in csv.DictReader(handle)}
    assert list(table["camera.jpg"].keys()) == COLUMNS
    assert table["camera.jpg"]["camera"] == "Canon EOS 5D Mark IV"
    assert table["camera.jpg"]["software"] == "Adobe Photoshop 25.1"
    assert table["xmp.jpg"]["jpeg_quality"] == "75" and "DigitalSourceType" in table["xmp.jpg"]["evidence"]
    assert "parameters" in table["a1111.png"]["generator_metadata"] and table["a1111.png"]["c2pa"] == "none"
    case.close()
    assert _snapshot(folder) == before
