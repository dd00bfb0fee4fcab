"""The report's fonts, and which one draws each character.

DejaVu (shipped with matplotlib) covers Latin, Greek, Cyrillic and common symbols. WenQuanYi Micro Hei (shipped
in resources/fonts, Apache-2.0) covers Chinese, Japanese and every Korean syllable. ReportLab embeds only the
glyphs a report uses, so the 5 MB font adds a few KiB per report. A character that neither font can draw (and
any outside Unicode's Basic Multilingual Plane, see _bmp) is written as its code point, "[U+1F600]", so a file
name in the report is never silently altered or shown as empty boxes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FALLBACK_FILE = Path(__file__).resolve().parents[2] / "resources" / "fonts" / "wqy-microhei.ttc"
MISSING = "missing"  # the font slot of characters no font has


@dataclass(frozen=True)
class ReportFonts:
    sans: str
    bold: str
    mono: str
    fallback: str | None = None
    covered: frozenset[int] = frozenset()  # code points the main fonts draw
    fallback_covered: frozenset[int] = field(default=frozenset(), repr=False)

    def font_for(self, char: str) -> str | None:
        """None for the main font, the fallback's name, or MISSING."""
        code = ord(char)
        if code in self.covered or char == "\n":
            return None
        if code in self.fallback_covered:
            return self.fallback
        return MISSING

    def runs(self, value: str) -> list[tuple[str | None, str]]:
        """The text cut into (font slot, run) pieces; one piece for plain text."""
        if value.isascii() and value.isprintable():
            return [(None, value)]
        pieces: list[tuple[str | None, str]] = []
        for char in value:
            slot = self.font_for(char)
            if pieces and pieces[-1][0] == slot:
                pieces[-1] = (slot, pieces[-1][1] + char)
            else:
                pieces.append((slot, char))
        return pieces

    def markup(self, value: str) -> str:
        """Paragraph markup for any text: escaped, fallback runs in <font>, missing characters as code points."""
        out = []
        for slot, run in self.runs(value):
            if slot is None:
                out.append(escape(run).replace("\n", "<br/>"))
            elif slot == MISSING:
                out.append(escape(code_points(run)))
            else:
                out.append(f'<font name="{slot}">{escape(run)}</font>')
        return "".join(out)

    def draw(self, canvas, x: float, y: float, value: str, size: float, right: bool = False) -> None:
        """drawString with the same font choice per run; `right` aligns the text's end at x."""
        pieces = [(slot if slot not in (None, MISSING) else self.sans, code_points(run) if slot == MISSING else run)
                  for slot, run in self.runs(value)]
        if right:
            x -= sum(pdfmetrics.stringWidth(run, font, size) for font, run in pieces)
        for font, run in pieces:
            canvas.setFont(font, size)
            canvas.drawString(x, y, run)
            x += pdfmetrics.stringWidth(run, font, size)


def code_points(run: str) -> str:
    return "".join(f"[U+{ord(char):04X}]" for char in run)


def register_fonts() -> ReportFonts:
    """Register the fonts once per process; fall back to the PDF base fonts (Latin only) if DejaVu is missing."""
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        main = {name: _register(name, folder / file) for name, file in (
            ("FS-Sans", "DejaVuSans.ttf"), ("FS-Sans-Bold", "DejaVuSans-Bold.ttf"), ("FS-Mono", "DejaVuSansMono.ttf"))}
    except Exception:
        return ReportFonts("Helvetica", "Helvetica-Bold", "Courier", covered=frozenset(range(32, 127)))
    covered = _bmp(main["FS-Sans"]) & _bmp(main["FS-Sans-Bold"])
    try:
        fallback_covered = _bmp(_register("FS-CJK", FALLBACK_FILE))
    except Exception:  # a damaged install: CJK characters are then written as code points
        return ReportFonts("FS-Sans", "FS-Sans-Bold", "FS-Mono", covered=covered)
    return ReportFonts("FS-Sans", "FS-Sans-Bold", "FS-Mono", "FS-CJK", covered, fallback_covered - covered)


def _bmp(char_map: dict[int, int]) -> frozenset[int]:
    """Code points of the Basic Multilingual Plane only: ReportLab writes the PDF's text map with 16-bit codes,
    so a character beyond it (most emoji) would be read back as a different one; those become code points."""
    return frozenset(code for code in char_map if code < 0x10000)


def _register(name: str, path: Path) -> dict[int, int]:
    """The font's character map, registering it under `name` if that has not happened yet (the first face of
    a .ttc collection)."""
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
    return pdfmetrics.getFont(name).face.charToGlyph
