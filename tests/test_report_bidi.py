"""Hebrew and Arabic in the PDF report: Arabic letters joined, right-to-left runs drawn right to left.

pdftotext -bbox-layout gives each word as drawn, its characters in drawing order (left to right) with its
position, so the tests below read what a person sees on the page. The expected forms are worked out here from
the Unicode rules, not from the libraries the report uses.
"""
import html
import re
import unicodedata
from pathlib import Path

import pytest

from app.report import build_report
from app.report.fonts import visual
from tests.needs import pdf_text
from tests.test_report import case_of_named_files

# poppler reads the PDF back: skipped on a developer's machine without it, a failure under CI (tests/needs.py)
pytestmark = pytest.mark.usefixtures("poppler")

HEBREW = "תמונה"  # "picture"
ARABIC = "صورة"  # "picture"
WRAPPED = "קובץ של התמונה מהחתונה של דני ורותי 2023.jpg"  # too long for one line of the table's File column
SPOOF = "photo\u202egpj.exe"  # RIGHT-TO-LEFT OVERRIDE: a viewer that obeys it shows "photoexe.jpg"


def joined(*letters: tuple[str, str]) -> str:
    """Arabic letters in the presentation form that Unicode names for each: ("SAD", "INITIAL")..."""
    return "".join(unicodedata.lookup(f"ARABIC LETTER {name} {form} FORM") for name, form in letters)


# صورة: sad joins the waw after it; waw, reh and teh marbuta never join the letter after them
SURA = joined(("SAD", "INITIAL"), ("WAW", "FINAL"), ("REH", "ISOLATED"), ("TEH MARBUTA", "ISOLATED"))
MUHAMMAD = joined(("MEEM", "INITIAL"), ("HAH", "MEDIAL"), ("MEEM", "MEDIAL"), ("DAL", "FINAL"))  # محمد


def drawn_lines(pdf: Path) -> list[tuple[int, float, str]]:
    """(page, top, words of the line left to right as drawn) for every text line of the PDF."""
    xml = pdf_text(pdf, "-bbox-layout")
    lines = []
    for page, body in enumerate(xml.split("<page ")[1:], 1):
        for line in re.findall(r"<line[^>]*>(.*?)</line>", body, re.S):
            words = re.findall(r'<word xMin="([\d.]+)"[^>]*>(.*?)</word>', line)
            top = float(re.search(r'yMin="([\d.]+)"', line)[1])
            lines.append((page, top, " ".join(html.unescape(w) for _x, w in sorted(words, key=lambda w: float(w[0])))))
    return lines


def test_hebrew_and_arabic_are_shaped_and_drawn_right_to_left(home, tmp_path):
    assert unicodedata.normalize("NFKC", SURA) == ARABIC and unicodedata.normalize("NFKC", MUHAMMAD) == "محمد"
    case_path = case_of_named_files(tmp_path, [f"{HEBREW} 12.jpg", f"{ARABIC}_1.png", WRAPPED, SPOOF])
    pdf = tmp_path / "rtl.pdf"
    build_report(case_path, pdf, title="דו״ח מקרה 17", examiner="محمد الأحمد")

    lines = drawn_lines(pdf)
    shown = "\n".join(text for _page, _top, text in lines)
    # The report reads left to right: a right-to-left run (letters, the spaces and numbers between them) is drawn
    # reversed, a number in it keeps its digits' order, and Latin text after it (".jpg") stays on its right.
    assert f"12 {HEBREW[::-1]}.jpg" in shown
    assert f"1_{SURA[::-1]}.png" in shown  # joined forms, then reversed
    assert MUHAMMAD[::-1] in shown and "دمحم" not in shown  # the examiner: joined letters, not bare ones
    assert "17 הרקמ ח״וד — case case.sqlite" in shown  # the running header (canvas.drawString)
    assert "17 הרקמ ח״וד" in shown.split("case case.sqlite", 1)[1]  # and the title
    assert "photo[U+202E]gpj.exe" in shown  # the override is shown, not obeyed
    # a name wrapped over lines keeps its first words on the first line (each line reordered on its own)
    first = next((page, top) for page, top, text in lines if "ץבוק" in text and "2023" not in text)
    last = next((page, top) for page, top, text in lines if "יתורו" in text and "Flagged" not in text)
    assert first[0] == last[0] and first[1] < last[1], (first, last)

    # pdftotext -layout rebuilds the reading order: each right-to-left word read from its right end
    layout = pdf_text(pdf, "-layout")
    layout = re.sub("[\u202a-\u202e]", "", layout)  # the embedding marks pdftotext puts around such words
    assert HEBREW in layout and HEBREW[::-1] not in layout
    assert SURA in layout and MUHAMMAD in layout and ARABIC[::-1] not in layout
    assert "[U+06" not in layout and "[U+FE" not in layout  # every letter and form drawn by DejaVu


@pytest.mark.parametrize("logical, drawn", [
    ("abc", "abc"),
    ("שלום (עולם) abc", "(םלוע) םולש abc"),  # brackets in a right-to-left run are mirrored
    ("קובץ (2).jpg", "(2) ץבוק.jpg"),
    # שָׁלוֹם reversed whole, points and all: DejaVu draws a Hebrew point over the letter drawn after it
    ("\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd", "\u05dd\u05b9\u05d5\u05dc\u05c1\u05b8\u05e9"),
    ("a\u202eb שלום", "a\u202eb םולש"),  # an override changes nothing
])
def test_visual_order(logical, drawn):
    assert visual(logical) == drawn
