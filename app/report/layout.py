"""Fonts, paragraph styles and the page furniture (running header, "Page N of M") of the report."""
from __future__ import annotations

import copy

from reportlab import platypus
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from app.report.fonts import register_fonts, right_to_left, visual, visual_pieces

PAGE = A4
MARGIN = 16 * mm
HEADER_GAP = 8 * mm


FONTS = register_fonts()
SANS, BOLD, MONO = FONTS.sans, FONTS.bold, FONTS.mono


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
    """Any text, safe inside Paragraph markup (file names and card text are attacker-controlled), each
    character in a font that has it."""
    return FONTS.markup("" if value is None else str(value))


class Paragraph(platypus.Paragraph):
    """A Paragraph that draws each of its lines in visual order (Hebrew and Arabic runs right to left). ReportLab
    breaks the lines of the logical text, and splits the paragraph over pages from them; only drawing sees the
    reordered lines, so a name wrapped over two lines keeps its first words on the first."""

    def drawPara(self, debug=0):
        logical = self.blPara
        self.blPara = copy.copy(logical)
        self.blPara.lines = [_visual_line(line, logical.kind) for line in logical.lines]
        try:
            return super().drawPara(debug)
        finally:
            self.blPara = logical


def _visual_line(line, kind: int):
    if kind == 0:  # (extra space, words) of a paragraph in one font: drawn as " ".join(words)
        words = line[1]
        if not right_to_left(" ".join(words)):
            return line
        shown = visual(" ".join(words))
        return (line[0], shown.split(" ") if len(words) > 1 else [shown], *line[2:])
    frags = line.words  # FragLine: fragments whose texts, one after another, are the line
    if any(hasattr(f, "cbDefn") or not isinstance(getattr(f, "text", None), str) for f in frags):
        return line  # an image or a link anchor inside: left as it is (the report has none)
    if not right_to_left("".join(f.text for f in frags)):
        return line
    shown = copy.copy(line)
    shown.words = []
    for frag, part in visual_pieces([(f, f.text) for f in frags]):
        piece = copy.copy(frag)
        piece.text = part
        shown.words.append(piece)
    return shown


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
            self.setFillColor(colors.grey)
            FONTS.draw(self, MARGIN, height - MARGIN + 3 * mm, _clip(f"{title} — case {case_name}", 110), 7.5)
            self.setStrokeColor(colors.lightgrey)
            self.line(MARGIN, height - MARGIN + 1.5 * mm, width - MARGIN, height - MARGIN + 1.5 * mm)
            FONTS.draw(self, width - MARGIN, MARGIN - 6 * mm, f"Page {self._pageNumber} of {total}", 7.5, right=True)
            self.restoreState()

    return NumberedCanvas


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
