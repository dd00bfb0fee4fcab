"""The report's sections as ReportLab flowables, in reading order."""
from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Callable

from reportlab.lib import colors
from reportlab.platypus import Image, PageBreak, Spacer, Table, TableStyle

from app.case.store import CaseRow
from app.report.charts import histogram_png
from app.report.data import ModelUse, ReportData
from app.report.layout import MARGIN, PAGE, Paragraph, text  # Paragraph: draws Hebrew and Arabic in visual order
from app.report.pictures import GradCam, Picture, scale_bar, thumbnail, tile_map
from models.formatting import format_timestamp
from models.labels import AGREE, DIFFER, LABELS, NOT_SCORED, UNREADABLE, outcome
from models.paths import readable
from models.tilemap import strongest

Progress = Callable[[int, int], None]
WIDTH = PAGE[0] - 2 * MARGIN
ROWS_PER_TABLE = 40  # short tables lay out fast; each repeats the header when it splits over a page
KEY_STRENGTHS = ("strong", "moderate")


def cover(s: dict, data: ReportData, *, title: str, examiner: str, created: datetime, machine: dict) -> list:
    scope = (f"Only the flagged files (AI-generated or inconclusive): {len(data.rows)} of {len(data.all_rows)} "
             "files are listed; the counts and the histogram cover every file." if data.only_flagged
             else f"Every file of the case: {len(data.rows)} files.")
    facts = [("Examiner", examiner or "(not stated)"),
             ("Created", f"{format_timestamp(created)} ({created.tzname()})"),
             ("Case file", readable(data.case_path)),
             ("Results of model", data.model_id or "(no results yet)"),
             *([("Every model", ", ".join(sorted({use.model_id for use in data.models})) +
                 " (each one's score is listed per file)")] if data.scores else []),
             ("Scope", scope),
             ("Forensight", machine["forensight"]),
             ("Machine", f"{machine['hostname']} — {machine['os']}"),
             ("Software", f"Python {machine['python']}, torch {machine['torch']}, ReportLab {machine['reportlab']}")]
    return [Spacer(1, 30), Paragraph(text(title), s["title"]), Spacer(1, 12),
            facts_table(s, facts, 110),
            Spacer(1, 14),
            Paragraph("A detector's P(fake) is a statistical estimate, not proof. Read it together with the "
                      "metadata findings and the models' stated limitations at the end of this report.", s["body"]),
            PageBreak()]


def method(s: dict, data: ReportData) -> list:
    story: list = [Paragraph("Method", s["h1"])]
    if not data.models:
        return story + [Paragraph("No model has scored any file of this case.", s["body"])]
    for use in data.models:
        story += [Paragraph(text(f"{use.name} ({use.model_id})"), s["h2"]), facts_table(s, model_facts(use), 110)]
    story.append(Paragraph("Files are hashed (SHA-256) as they are read; the hash in this report identifies "
                           "the exact bytes that were scored.", s["small"]))
    return story


def model_facts(use: ModelUse) -> list[tuple[str, str]]:
    card = use.card
    settings = "; ".join(
        f"threshold {_num(t)}, inconclusive {_num(lo)}–{_num(hi)}, device {dev or 'not recorded'}"
        for t, lo, hi, dev in use.settings) or "not recorded"
    facts = [("Model id", use.model_id), ("Architecture", use.architecture or "not stated"),
             ("Weights SHA-256", use.weights_sha256),
             ("Trained on", card.get("trained_on") or "not stated on the card"),
             ("Looks at", analysis(card)), ("Scan settings", settings), ("Files scored", str(use.files))]
    if card.get("description"):
        facts.insert(2, ("Description", str(card["description"])))
    if isinstance(card.get("calibration"), dict) and card["calibration"]:
        from models.calibration import describe

        # a calibrated variant: its P(fake) and threshold were fitted on the examiner's own photos
        facts.insert(2, ("Calibration", describe(card["calibration"])))
    if isinstance(card.get("ensemble"), dict) and card["ensemble"]:
        from models.ensemble import describe as describe_ensemble

        # no network of its own: what it combined, by which rule, fitted on what; its members have their own
        # entries in this section (each scored every file the ensemble scored)
        facts[facts.index(("Looks at", analysis(card)))] = ("Looks at", "each member's input, as on its card")
        facts.insert(2, ("Combination", describe_ensemble(card["ensemble"])))
    return facts


def summary(s: dict, data: ReportData) -> list:
    counts = data.counts
    names = list(LABELS) + [UNREADABLE] + ([NOT_SCORED] if counts.get(NOT_SCORED) else [])
    rows = [[Paragraph("Outcome", s["head"]), Paragraph("Files", s["head"])]]
    rows += [[Paragraph(text(name), s["body"]), Paragraph(str(counts.get(name, 0)), s["body"])] for name in names]
    rows.append([Paragraph("<b>total</b>", s["body"]), Paragraph(f"<b>{len(data.all_rows)}</b>", s["body"])])
    table = Table(rows, colWidths=[120, 60], hAlign="LEFT")
    table.setStyle(grid_style())
    story = [Paragraph("Summary", s["h1"]), table, Spacer(1, 10)]
    scores = [row.p_fake for row in data.all_rows if row.p_fake is not None and not row.error]
    if scores:
        threshold, band = _settings_of(data)
        png = histogram_png(scores, threshold, band)
        story += [Paragraph("P(fake) of every scored file", s["h2"]),
                  Image(io.BytesIO(png), width=WIDTH, height=WIDTH * 2.4 / 6.0)]
    return story + agreement_summary(s, data) + [PageBreak()]


def agreement_summary(s: dict, data: ReportData) -> list:
    """How often the case's models agree: files every model labelled, and how many got one label from all."""
    if not data.scores:
        return []
    verdicts = [data.agreement(row.file_id) for row in data.all_rows]
    compared, agreed = sum(bool(v) for v in verdicts), verdicts.count(AGREE)
    return [Paragraph("Agreement between the models", s["h2"]),
            Paragraph(f"{agreed} of {compared} files labelled by all {len({u.model_id for u in data.models})} "
                      f"models get the same label from each; {compared - agreed} differ. The file table lists "
                      "every model's P(fake).", s["body"])]


def file_table(s: dict, data: ReportData, progress: Progress, done: int, total: int) -> tuple[list, int]:
    widths = [40, 96, 132, 44, 58, WIDTH - 370]
    score_head = "P(fake)"
    if data.scores:  # several models: each one's score, by model id, in a wider column
        widths, score_head = [40, 80, 132, 84, 62, WIDTH - 398], "P(fake) by model"
    header = [Paragraph(h, s["head"]) for h in ("", "File", "SHA-256", score_head, "Label", "Key evidence")]
    story: list = [Paragraph("Files" + (" (flagged only)" if data.only_flagged else ""), s["h1"])]
    if not data.rows:
        return story + [Paragraph("No files to list.", s["body"]), PageBreak()], done
    for start in range(0, len(data.rows), ROWS_PER_TABLE):
        body = []
        for row in data.rows[start:start + ROWS_PER_TABLE]:
            body.append(file_row(s, row, data))
            done += 1
            progress(done, total)
        table = Table([header] + body, colWidths=widths, repeatRows=1)
        table.setStyle(grid_style())
        story.append(table)
    return story + [PageBreak()], done


def file_row(s: dict, row: CaseRow, data: ReportData) -> list:
    sha = row.sha256 or ""
    key = [f.message for f in data.evidence.get(row.file_id, []) if f.strength in KEY_STRENGTHS]
    label = text(outcome(row.label, row.error))
    score = "—" if row.p_fake is None else f"{row.p_fake:.3f}"
    if data.scores:  # every model's score on a line of its own, the reported model's first
        score = "<br/>".join(text(f"{m.model_id} " + ("—" if m.p_fake is None else f"{m.p_fake:.3f}"))
                             for m in data.scores.get(row.file_id, []))
        if verdict := data.agreement(row.file_id):
            label += "<br/>" + ("Models agree" if verdict == AGREE else "<b>Models differ</b>")
    return [picture_flowable(thumbnail(row, 96), 34, s),
            Paragraph(text(Path(row.path).name), s["cell"]),
            Paragraph(f"{text(sha[:32])}<br/>{text(sha[32:])}" if sha else "—", s["mono"]),
            Paragraph(score or "—", s["cell"]),
            Paragraph(label, s["cell"]),
            Paragraph("<br/>".join(text(m) for m in key) or ("—" if not row.error else text(row.error)), s["cell"])]


def flagged_pages(s: dict, data: ReportData, progress: Progress, done: int, total: int,
                  device: str | None = "auto") -> tuple[list, int]:
    flagged = data.flagged
    if not flagged:
        return [], done
    weights = next((row.weights_sha256 for row in flagged if row.weights_sha256), None)
    cam = GradCam(data.model_id, weights, device)
    story: list = []
    for row in flagged:
        image, heat = cam.pictures(row)
        tiles = data.tiles.get(row.file_id, [])
        side = (WIDTH - 18) / 3
        heads = ("Image", "Grad-CAM: where the model saw 'fake'", "Tile map: each tile's P(fake)")
        pictures = Table([[Paragraph(h, s["h2"]) for h in heads],
                          [picture_flowable(image, side, s), picture_flowable(heat, side, s),
                           picture_flowable(tile_map(row, tiles), side, s)]],
                         colWidths=[side + 6] * 3)
        pictures.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story += [Paragraph(text(f"Flagged: {Path(row.path).name}"), s["h1"]),
                  facts_table(s, file_facts(row) + score_facts(data, row) + tile_facts(tiles)
                              + [("Grad-CAM", cam.where)], 90),
                  Spacer(1, 8), pictures, *tile_legend(s, tiles), Spacer(1, 6),
                  *findings_section(s, data.evidence.get(row.file_id, [])), PageBreak()]
        done += 1
        progress(done, total)
    return story, done


def file_facts(row: CaseRow) -> list[tuple[str, str]]:
    modified = format_timestamp(row.modified) or "unknown"
    return [("Path", row.path), ("SHA-256", row.sha256 or "unknown"),
            ("Size", f"{row.size:,} bytes" if row.size is not None else "unknown"),
            ("Picture", f"{row.width}×{row.height} {row.format or ''}".strip() if row.width else "unknown"),
            ("Modified (UTC)", modified),
            ("P(fake)", "—" if row.p_fake is None else f"{row.p_fake:.4f}"),
            ("Label", f"{row.label} (threshold {_num(row.threshold)})"), ("Model", row.model_id or "")] + \
        ([("Notes", row.notes)] if row.notes else [])  # e.g. a small picture padded by the card's rule


def score_facts(data: ReportData, row: CaseRow) -> list[tuple[str, str]]:
    """Every model's verdict on the file, when several models scored the case."""
    scores = data.scores.get(row.file_id, [])
    if not scores:
        return []
    lines = "; ".join(f"{m.model_id}: " + (f"error ({m.error})" if m.error or m.p_fake is None else
                                           f"P(fake) {m.p_fake:.4f}, {m.label}") for m in scores)
    verdict = {AGREE: "the models agree", DIFFER: "the models differ"}.get(data.agreement(row.file_id))
    return [("Every model", lines + (f" — {verdict}" if verdict else ""))]


def tile_facts(tiles: list) -> list[tuple[str, str]]:
    if not tiles:
        return []
    best = strongest(tiles)
    where = "the whole view" if len(tiles) == 1 else f"the strongest of {len(tiles)} tiles"
    return [("Strongest tile", f"{where}: at x {best.x}, y {best.y}, {best.w}×{best.h} pixels, "
                               f"P(fake) {best.p_fake:.4f}")]


def tile_legend(s: dict, tiles: list) -> list:
    """The tile map's colour scale under the pictures."""
    if not tiles:
        return []
    bar = picture_flowable(scale_bar(), 160, s)
    row = Table([[Paragraph("Tile map scale: P(fake) 0", s["small"]), bar,
                  Paragraph("1 (the strongest tile is framed in white)", s["small"])]],
                colWidths=[100, 166, WIDTH - 266], hAlign="RIGHT")
    row.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return [row]


def analysis(card: dict) -> str:
    """What the model looks at in each picture, from the card stored in the case."""
    from models.card import CardError, ModelCard
    from models.preprocess import describe_policy

    try:
        return describe_policy(ModelCard.from_dict(card).input)
    except (CardError, TypeError, ValueError, KeyError):  # no card, or one this version cannot read
        return "not stated"


def findings_section(s: dict, findings: list) -> list:
    story: list = [Paragraph("Metadata and provenance", s["h2"])]
    if not findings:
        return story + [Paragraph("No metadata findings are recorded for this file (the case may predate "
                                  "the metadata checks).", s["body"])]
    rows = [[Paragraph(h, s["head"]) for h in ("Strength", "Source", "Points to", "Finding")]]
    rows += [[Paragraph(text(f.strength), s["cell"]), Paragraph(text(f.source), s["cell"]),
              Paragraph(text(f.points_to or "—"), s["cell"]), Paragraph(text(f.message), s["cell"])]
             for f in findings]
    table = Table(rows, colWidths=[50, 50, 55, WIDTH - 155], repeatRows=1)
    table.setStyle(grid_style())
    return story + [table]


def unreadable_appendix(s: dict, data: ReportData) -> list:
    story: list = [Paragraph("Appendix: unreadable files", s["h1"])]
    rows = data.unreadable
    if not rows:
        return story + [Paragraph("Every file could be read.", s["body"]), PageBreak()]
    table = [[Paragraph(h, s["head"]) for h in ("File", "SHA-256", "Reason")]]
    table += [[Paragraph(text(row.path), s["cell"]),
               Paragraph(f"{text((row.sha256 or '—')[:32])}<br/>{text((row.sha256 or '')[32:])}", s["mono"]),
               Paragraph(text(row.error), s["cell"])] for row in rows]
    grid = Table(table, colWidths=[170, 132, WIDTH - 302], repeatRows=1)
    grid.setStyle(grid_style())
    return story + [grid, PageBreak()]


def limitations(s: dict, data: ReportData) -> list:
    story: list = [Paragraph("Limitations of the models", s["h1"])]
    for use in data.models:
        stated = use.card.get("limitations") or "The model's card states no limitations."
        story += [Paragraph(text(f"{use.name} ({use.model_id})"), s["h2"]), Paragraph(text(stated), s["body"])]
    story.append(Paragraph(
        "Grad-CAM shows where a model's evidence for 'fake' is strongest, scaled per image; it does not show "
        "how strong that evidence is. Missing metadata is common in genuine photographs that were edited or "
        "shared online, and metadata can be forged.", s["small"]))
    return story


# ---- helpers --------------------------------------------------------------------------------------------
def facts_table(s: dict, facts: list[tuple[str, str]], key_width: float) -> Table:
    rows = [[Paragraph(f"<b>{text(k)}</b>", s["body"]),
             Paragraph(text(v), s["mono_body"] if "SHA-256" in k else s["body"])] for k, v in facts]
    table = Table(rows, colWidths=[key_width, WIDTH - key_width], hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                               ("TOPPADDING", (0, 0), (-1, -1), 2)]))
    return table


def grid_style() -> TableStyle:
    return TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#34495e")),
                       ("GRID", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                       ("VALIGN", (0, 0), (-1, -1), "TOP"),
                       ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f4f6f8")])])


def picture_flowable(picture: Picture, box: float, s: dict):
    if picture.jpeg is None:
        return Paragraph(text(picture.reason or "no picture"), s["small"])
    width, height = picture.size
    scale = box / max(width, height)
    return Image(io.BytesIO(picture.jpeg), width=width * scale, height=height * scale)


def _settings_of(data: ReportData) -> tuple[float | None, tuple[float, float] | None]:
    """The threshold and band of the shown model's results (the first recorded, when they varied)."""
    for use in data.models:
        if use.model_id == data.model_id and use.settings:
            threshold, low, high, _device = use.settings[0]
            return threshold, (low, high) if low is not None and high is not None else None
    return None, None


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"

