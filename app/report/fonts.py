"""The report's fonts, and which one draws each character.

DejaVu (shipped with matplotlib) covers Latin, Greek, Cyrillic and common symbols. WenQuanYi Micro Hei (shipped
in resources/fonts, Apache-2.0) covers Chinese, Japanese and every Korean syllable. ReportLab embeds only the
glyphs a report uses, so the 5 MB font adds a few KiB per report. A character that neither font can draw (and
any outside Unicode's Basic Multilingual Plane, see _bmp) is written as its code point, "[U+1F600]", so a file
name in the report is never silently altered or shown as empty boxes.

Hebrew and Arabic: ReportLab draws characters one after another, left to right, each in its nominal form. So
Arabic text is first shaped (arabic-reshaper picks each letter's joined form, a presentation-form character that
DejaVu has) and every line is drawn in visual order (python-bidi resolves the Unicode Bidirectional Algorithm's
levels, visual_order reverses the right-to-left runs). The paragraph direction is left to right, the report's own,
so "תמונה 12.jpg" is drawn as the Hebrew word and 12 read right to left, then ".jpg" at the right end.
Shaping happens before ReportLab measures and breaks lines (it changes widths); reordering after, line by line
(layout.Paragraph), so a name wrapped over two lines keeps its first words on the first line.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence, TypeVar
from xml.sax.saxutils import escape

from arabic_reshaper import ArabicReshaper
from arabic_reshaper.ligatures import LIGATURES
from bidi import get_display
from bidi.mirror import MIRRORED
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FALLBACK_FILE = Path(__file__).resolve().parents[2] / "resources" / "fonts" / "wqy-microhei.ttc"
MISSING = "missing"  # the font slot of characters no font has
# Embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) are ignored when ordering a line and drawn as
# code points: honoured, "photo\u202egpj.exe" would read "photo" + "exe.jpg" and hide the real extension.
EXPLICIT = frozenset({"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})
RIGHT_TO_LEFT = frozenset({"R", "AL", "AN"})  # a line holding none of these is drawn as it is
ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")  # letters arabic-reshaper shapes
PRESENTATION_FORMS = re.compile("[\ufb50-\ufdff\ufe70-\ufeff]")
K = TypeVar("K")


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
        if unicodedata.bidirectional(char) in EXPLICIT:
            return MISSING
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

    def shape(self, value: str) -> str:
        """Arabic letters in their joined forms (presentation-form characters), still in logical order; a form
        that no font draws stays the plain letter (NFKC undoes it), drawn unjoined rather than as a code point."""
        if value.isascii() or not ARABIC.search(value):
            return value
        return PRESENTATION_FORMS.sub(
            lambda m: m[0] if self.font_for(m[0]) != MISSING else unicodedata.normalize("NFKC", m[0]),
            self._reshaper.reshape(value))

    @cached_property
    def _reshaper(self) -> ArabicReshaper:
        """Keeps the vowel marks (harakat: they are part of the name) and drops the ligatures the fonts lack."""
        lacking = {name: False for name, (_letters, forms) in LIGATURES
                   if any(form and any(self.font_for(c) == MISSING for c in form) for form in forms)}
        # (with none left, support_ligatures off: an empty ligature pattern would match everywhere)
        return ArabicReshaper({"delete_harakat": False, "support_ligatures": len(lacking) < len(LIGATURES),
                               **lacking})

    def markup(self, value: str) -> str:
        """Paragraph markup for any text: Arabic shaped, escaped, fallback runs in <font>, missing characters as
        code points. Still in logical order: layout.Paragraph draws each line in visual order."""
        out = []
        for slot, run in self.runs(self.shape(value)):
            if slot is None:
                out.append(escape(run).replace("\n", "<br/>"))
            elif slot == MISSING:
                out.append(escape(code_points(run)))
            else:
                out.append(f'<font name="{slot}">{escape(run)}</font>')
        return "".join(out)

    def draw(self, canvas, x: float, y: float, value: str, size: float, right: bool = False) -> None:
        """drawString of one line, shaped and in visual order, with the same font choice per run; `right` aligns
        the text's end at x."""
        pieces = [(slot if slot not in (None, MISSING) else self.sans, code_points(run) if slot == MISSING else run)
                  for slot, run in self.runs(visual(self.shape(value)))]
        if right:
            x -= sum(pdfmetrics.stringWidth(run, font, size) for font, run in pieces)
        for font, run in pieces:
            canvas.setFont(font, size)
            canvas.drawString(x, y, run)
            x += pdfmetrics.stringWidth(run, font, size)


def right_to_left(text: str) -> bool:
    """Whether the text holds a right-to-left character (Hebrew, Arabic, Arabic digits...): only then does its
    drawing order differ from its logical order."""
    return not text.isascii() and any(unicodedata.bidirectional(c) in RIGHT_TO_LEFT for c in text)


def visual(line: str) -> str:
    """One line of text in drawing order, left to right."""
    return "".join(text for _key, text in visual_pieces([(None, line)]))


def visual_pieces(pieces: Sequence[tuple[K, str]]) -> list[tuple[K, str]]:
    """One line, given as (key, text) pieces in logical order, rearranged into drawing order (left to right) by
    the Unicode Bidirectional Algorithm (UAX #9) in a left-to-right paragraph: right-to-left runs reversed,
    brackets inside them mirrored. Each character keeps its piece's key (a font, a Paragraph fragment); a piece
    that ends up in several places is cut, and each part keeps the key."""
    line = "".join(text for _key, text in pieces)
    if not right_to_left(line):
        return list(pieces)
    owner = [k for k, (_key, text) in enumerate(pieces) for _char in text]
    levels = embedding_levels(line)
    out: list[tuple[int, str]] = []
    for i in visual_order(line, levels):
        char = MIRRORED.get(line[i], line[i]) if levels[i] % 2 else line[i]  # L4
        if out and out[-1][0] == owner[i]:
            out[-1] = (owner[i], out[-1][1] + char)
        else:
            out.append((owner[i], char))
    return [(pieces[k][0], text) for k, text in out]


_LEVEL = re.compile(r"Level\(\s*(\d+)")


def embedding_levels(line: str) -> list[int]:
    """The resolved embedding level of each character of one line (UAX #9 rules P-I, left-to-right paragraph),
    by python-bidi's Rust implementation: get_display(debug=True) returns them, one per UTF-8 byte."""
    # explicit controls take no part (see EXPLICIT); a lone surrogate (an undecodable file name) cannot be passed
    probe = "".join("\ufffd" if unicodedata.bidirectional(c) in EXPLICIT or 0xD800 <= ord(c) < 0xE000 else c
                    for c in line)
    dump = get_display(probe, base_dir="L", debug=True)
    per_byte = [int(n) for n in _LEVEL.findall(dump.partition("levels:")[2].partition("]")[0])]
    if len(per_byte) != len(probe.encode("utf-8")):
        raise RuntimeError("python-bidi's debug output has changed: its embedding levels cannot be read")
    levels, at = [], 0
    for char in probe:
        levels.append(per_byte[at])
        at += len(char.encode("utf-8"))
    return levels


def visual_order(line: str, levels: list[int]) -> list[int]:
    """Indexes into `line` in drawing order: UAX #9 rules L1 and L2 for one line."""
    levels = list(levels)
    classes = [unicodedata.bidirectional(c) for c in line]
    trailing = True  # L1: separators, and the whitespace before them or at the end of the line, at the base level
    for i in reversed(range(len(line))):
        if classes[i] in ("S", "B"):
            levels[i], trailing = 0, True
        elif trailing and (classes[i] in ("WS", "BN") or classes[i] in EXPLICIT):
            levels[i] = 0
        else:
            trailing = False
    order = list(range(len(line)))
    odd = [level for level in levels if level % 2]
    for level in range(max(levels), min(odd, default=max(levels) + 1) - 1, -1):  # L2
        start = None
        for i in range(len(order) + 1):
            if i < len(order) and levels[order[i]] >= level:
                start = i if start is None else start
            elif start is not None:
                order[start:i] = order[start:i][::-1]
                start = None
    # No L3 (marks after their base again): DejaVu draws a Hebrew point or an Arabic haraka to the right of the
    # pen, over the letter drawn next, which in a reversed run is the letter it belongs to.
    return order


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
