"""Evidence beyond the pixels: what a file says about itself (EXIF, generator metadata, C2PA, JPEG facts).

Each finding names its source and strength and is shown beside the model's score, never folded into it.
"""
from app.evidence.findings import Finding, STRENGTHS

__all__ = ["Finding", "STRENGTHS"]
