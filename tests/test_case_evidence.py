"""Findings are stored per file in the case and read back as they were written."""
import pytest

from app.case.store import Case, CaseError
from app.evidence import Finding
from models.engine import ScanResult


def test_findings_round_trip_and_replace(tmp_path):
    case = Case(tmp_path / "case.sqlite")
    result = ScanResult(str(tmp_path / "a.jpg"), "ab" * 32, 10, 4, 4, "JPEG", 0.9, "AI-generated", "m", "w" * 64)
    case.record([result])
    first = [Finding("exif", "camera", "weak", "Camera: Canon EOS 5D", {"make": "Canon"}, "camera"),
             Finding("png_text", "generator_parameters", "strong", "Generation parameters found", {"seed": 1},
                     "generated")]
    case.record_evidence(result.path, result.sha256, first)
    file_id = case.rows()[0].file_id
    assert case.evidence_for(file_id) == first and case.has_evidence("ab" * 32)
    case.record_evidence(result.path, result.sha256, first[:1])
    assert case.evidence_for(file_id) == first[:1]
    with pytest.raises(CaseError, match="not in the case"):
        case.record_evidence(str(tmp_path / "other.jpg"), None, first)
    with pytest.raises(ValueError):
        Finding("exif", "x", "certain", "bad strength")
