"""Fonts, paragraph styles and the page furniture (running header, "Page N of M") of the report."""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

PAGE = A4
MARGIN = 16 * mm
HEADER_GAP = 8 * mm


def _register_fonts() -> tuple[str, str, str]:
    """DejaVu (shipped with matplotlib) covers Latin, Greek and Cyrillic file names, which the PDF base fonts
    cannot show; fall back to the base fonts if it is missing."""
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        for name, file in (("FS-Sans", "DejaVuSans.ttf"), ("FS-Sans-Bold", "DejaVuSans-Bold.ttf"),
                           ("FS-Mono", "DejaVuSansMono.ttf")):
            if name not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(name, str(folder / file)))
        return "FS-Sans", "FS-Sans-Bold", "FS-Mono"
    except Exception:
        return "Helvetica", "Helvetica-Bold", "Courier"


SANS, BOLD, MONO = _register_fonts()


def styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=SANS, fontSize=9, leading=11.5)
    return {
        "title": ParagraphStyle("title", parent=base["Title"], fontName=BOLD, fontSize=20, leading=24),
        "h1": ParagraphStyle("h1", parent=base["Heading1"], fontName=BOLD, fontSize=14, leading=17,
                             spaceBefore=6, spaceAfter=6),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName=BOLD, fontSize=11, leading=14,
                             spaceBefore=6, spaceAfter=3),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7, leading=8.5),
        "cell": ParagraphStyle("cell", parent=body, fontSize=7, leading=8.5, wordWrap="CJK"),
        "mono": ParagraphStyle("mono", parent=body, fontName=MONO, fontSize=6, leading=7.5),
        "mono_body": ParagraphStyle("mono_body", parent=body, fontName=MONO, fontSize=7.5, leading=9.5),
        "head": ParagraphStyle("head", parent=body, fontName=BOLD, fontSize=7, leading=8.5,
                               textColor=colors.white),
    }


def text(value: object) -> str:
    """Any text, safe inside Paragraph markup (file names and card text are attacker-controlled)."""
    return escape("" if value is None else str(value)).replace("\n", "<br/>")


def numbered_canvas(title: str, case_name: str, pages_seen: list[int]):
    """A canvas class that holds every page until the end, so each can say "Page N of M"; it draws the
    running header then. The page count is appended to pages_seen for the caller."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._furniture(total)
                super().showPage()
            pages_seen.append(total)
            super().save()

        def _furniture(self, total: int) -> None:
            width, height = PAGE
            self.saveState()
            self.setFont(SANS, 7.5)
            self.setFillColor(colors.grey)
            self.drawString(MARGIN, height - MARGIN + 3 * mm, _clip(f"{title} — case {case_name}", 110))
            self.setStrokeColor(colors.lightgrey)
            self.line(MARGIN, height - MARGIN + 1.5 * mm, width - MARGIN, height - MARGIN + 1.5 * mm)
            self.drawRightString(width - MARGIN, MARGIN - 6 * mm, f"Page {self._pageNumber} of {total}")
            self.restoreState()

    return NumberedCanvas


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
