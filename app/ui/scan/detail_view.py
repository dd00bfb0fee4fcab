"""One file up close: the picture (zoom, fit, 100 %), its Grad-CAM map on demand (opacity, side by side with
the plain picture), its tile map (each tile's P(fake) where the tile lies, with a colour scale; the tile under
the pointer is named), and the facts: path, SHA-256, size, format, metadata, and every model's score."""
from __future__ import annotations

import html
from pathlib import PurePath

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QSplitter,
                               QTextBrowser, QVBoxLayout, QWidget)

from app.case.store import CaseRow, ModelScore
from app.evidence.findings import Finding
from app.ui.scan.image_viewer import ImageViewer
from app.ui.scan.previews import Preview, make_preview
from app.ui.widgets.qt_images import pil_rgba_to_qimage, pil_to_qimage
from app.ui.scan.results_model import verdict
from app.ui.scan.explain import ExplainRequest, ExplainResult, ExplainService
from app.ui.workers import WorkerPool
from models import tilemap
from models.engine import Tile
from models.formatting import format_timestamp, human_size
from models.labels import outcome

TILE_MAP_SIDE = 1024  # the map layer's longest side: tiles are coarse, the view stretches it over the picture


class DetailView(QWidget):
    overlay_ready = Signal()  # the Grad-CAM layer of the current image is on screen (tests wait on it)
    preview_ready = Signal()

    def __init__(self, explainer: ExplainService, parent=None) -> None:
        super().__init__(parent)
        self.explainer = explainer
        explainer.ready.connect(self._explained)
        explainer.failed.connect(self._explain_failed)
        self._workers = WorkerPool(threads=1, parent=self)
        self._row: CaseRow | None = None
        self._scores: list[ModelScore] = []
        self._findings: list[Finding] = []
        self._tiles: list[Tile] = []
        self._preview: Preview | None = None
        self._exif_text = ""
        self.status = QLabel("")
        self.status.setObjectName("detailStatus")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._build_controls())
        layout.addWidget(self.status)
        layout.addWidget(self._build_body(), 1)
        self.show_row(None, [])

    def _build_controls(self) -> QHBoxLayout:
        """The viewers and the row of controls above them: zoom, Grad-CAM, opacity, side by side, tile map."""
        self.viewer = ImageViewer()
        self.plain_viewer = ImageViewer()  # left half of the side-by-side comparison
        self.plain_viewer.hide()
        self.viewer.link(self.plain_viewer)
        self.viewer.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))

        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Fit the picture in the view")
        self.fit_button.clicked.connect(self.viewer.fit)
        self.actual_button = QPushButton("100 %")
        self.actual_button.setToolTip("One image pixel per screen pixel")
        self.actual_button.clicked.connect(self.viewer.actual_size)
        self.zoom_label = QLabel("")
        self.zoom_label.setMinimumWidth(48)
        self.overlay_box = QCheckBox("Grad-CAM")
        self.overlay_box.setToolTip("Where the model looked to call this picture AI-generated")
        self.overlay_box.toggled.connect(self._overlay_toggled)
        # whose Grad-CAM: the row's model, or any other model that scored the file (an ensemble's members: the
        # ensemble itself has no network to explain)
        self.explain_model = QComboBox()
        self.explain_model.setToolTip("The model whose Grad-CAM is shown: any model that scored this file")
        self.explain_model.currentIndexChanged.connect(lambda _: self._explain_model_changed())
        self.explain_model.hide()
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.opacity_slider.setMaximumWidth(120)
        self.opacity_slider.setToolTip("Heat-map opacity")
        self.opacity_slider.valueChanged.connect(self._opacity_changed)
        self.side_by_side_box = QCheckBox("Side by side")
        self.side_by_side_box.setToolTip("The plain picture beside the heat map, zoomed together")
        self.side_by_side_box.toggled.connect(self._side_by_side_toggled)
        self.tiles_box = QCheckBox("Tile map")
        self.tiles_box.setToolTip("Each tile's own P(fake) where the model looked, on a fixed scale (not per "
                                  "image like Grad-CAM); the framed tile is the strongest")
        self.tiles_box.toggled.connect(self._tiles_toggled)
        self.tile_scale = self._scale_legend()
        self.tile_scale.hide()
        self.hover_label = QLabel("")
        self.hover_label.setObjectName("tileUnderPointer")
        self.viewer.pointer_moved.connect(self._pointer_moved)
        self.viewer.pointer_left.connect(lambda: self.hover_label.setText(""))
        controls = QHBoxLayout()
        for widget in (self.fit_button, self.actual_button, self.zoom_label, self.overlay_box, self.explain_model,
                       self.opacity_slider, self.side_by_side_box, self.tiles_box, self.tile_scale):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.hover_label)
        return controls

    def _build_body(self) -> QSplitter:
        """The picture (beside its plain copy when side by side) above the facts."""
        pictures = QSplitter(Qt.Orientation.Horizontal)
        pictures.addWidget(self.plain_viewer)
        pictures.addWidget(self.viewer)
        self.pictures_splitter = pictures
        self.facts = QTextBrowser()
        self.facts.setOpenLinks(False)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(pictures)
        body.addWidget(self.facts)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setSizes([520, 300])  # the picture first; the facts scroll
        self.body_splitter = body
        return body

    # ---- public ------------------------------------------------------------------------------
    def show_row(self, row: CaseRow | None, scores: list[ModelScore],
                 findings: list[Finding] | None = None, tiles: list[Tile] | None = None) -> None:
        self._row, self._scores, self._preview, self._exif_text = row, scores, None, ""
        self._findings = list(findings or [])
        self._tiles = list(tiles or [])
        self.hover_label.setText("")
        self._fill_explain_models(row, scores)
        self._render_facts()
        self.status.setText("")
        if row is None:
            self._show_message("Select a file to see it here.")
            return
        self._show_message("Loading…")
        path = row.fs_path  # the exact name on disk (row.path is the readable form)
        self._workers.start(lambda: make_preview(path) if self._still_showing(path) else None,
                            done=lambda preview: self._preview_loaded(path, preview),
                            failed=lambda reason: self._preview_failed(path, reason))

    def current_row(self) -> CaseRow | None:
        return self._row

    def shutdown(self) -> None:
        self._workers.shutdown()

    # ---- picture -----------------------------------------------------------------------------
    def _show_message(self, text: str) -> None:
        self.viewer.show_message(text)
        self.plain_viewer.show_message("")

    def _still_showing(self, path: str) -> bool:
        """Read from the worker: skip decoding pictures the user has already scrolled past."""
        row = self._row
        return row is not None and row.fs_path == path

    def _preview_loaded(self, path: str, preview: Preview | None) -> None:
        if preview is None or not self._still_showing(path):
            return  # the selection moved on
        self._preview = preview
        pixmap = QPixmap.fromImage(preview.image)
        self.viewer.set_image(pixmap)
        self.plain_viewer.set_image(pixmap)
        self._exif_text = self._exif_html(preview)
        self._render_facts()
        self.preview_ready.emit()
        if self.overlay_box.isChecked():
            self._request_overlay()
        if self.tiles_box.isChecked():
            self._draw_tile_map()

    def _preview_failed(self, path: str, reason: str) -> None:
        if self._still_showing(path):
            self._show_message(f"No picture: {reason}")

    # ---- Grad-CAM ----------------------------------------------------------------------------
    def _fill_explain_models(self, row: CaseRow | None, scores: list[ModelScore]) -> None:
        """The models whose Grad-CAM can be shown for this file: every scored one but ensembles; the row's model
        first chosen (an ensemble row: its first member, the first explainable model in the list)."""
        choices = [(s.model_id, s.weights_sha256) for s in scores
                   if s.architecture != "ensemble" and s.p_fake is not None and not s.error]
        if row is not None and row.model_id and not any(s.model_id == row.model_id for s in scores):
            choices.insert(0, (row.model_id, row.weights_sha256))  # no scores given: the row's own model
        self.explain_model.blockSignals(True)
        self.explain_model.clear()
        for model_id, weights in dict.fromkeys(choices):
            self.explain_model.addItem(model_id, (model_id, weights))
        chosen = self.explain_model.findText(row.model_id) if row is not None and row.model_id else -1
        self.explain_model.setCurrentIndex(max(chosen, 0) if self.explain_model.count() else -1)
        self.explain_model.blockSignals(False)
        self.explain_model.setVisible(self.explain_model.count() > 1 or bool(
            row is not None and self.explain_model.count() and self.explain_model.currentText() != row.model_id))

    def _explain_model_changed(self) -> None:
        self.viewer.set_overlay(QPixmap())  # the previous model's map must not stay under the new name
        if self.overlay_box.isChecked():
            self._request_overlay()

    def _explain_request(self) -> ExplainRequest | None:
        row, preview = self._row, self._preview
        if row is None or preview is None or row.error or row.p_fake is None or not row.sha256:
            return None
        chosen = self.explain_model.currentData()
        model_id, weights = chosen if chosen else (row.model_id, row.weights_sha256)
        return ExplainRequest(row.fs_path, row.sha256, model_id, weights,
                              (preview.image.width(), preview.image.height()))

    def _request_overlay(self) -> None:
        request = self._explain_request()
        if request is None:
            if self._row is not None and self._preview is not None:
                self.status.setText("Grad-CAM needs a file scored by a model.")
            return
        if not self.explainer.is_cached(request):
            self.status.setText(f"Computing Grad-CAM for {request.model_id}…")
        self.explainer.request(request)

    def _explained(self, result: ExplainResult) -> None:
        if result.request != self._explain_request():
            return
        self.viewer.set_overlay(QPixmap.fromImage(result.colours))
        self.viewer.set_overlay_opacity(self._overlay_opacity())
        self.viewer.set_overlay_visible(self.overlay_box.isChecked())
        source = "cached" if result.cached else f"{result.seconds:.2f} s"
        self.status.setText(f"Grad-CAM of {result.request.model_id} ({source}): red = raised P(fake)")
        self.status.setToolTip("Grad-CAM for the fake class at the layer the architecture names. Red regions "
                               "raised P(fake) most; parts outside the model's centre crop were never seen and "
                               "stay blue.")
        self.overlay_ready.emit()

    def _explain_failed(self, request: ExplainRequest, reason: str) -> None:
        if request == self._explain_request():
            self.status.setText(f"No Grad-CAM: {reason}")

    def _overlay_toggled(self, on: bool) -> None:
        self.viewer.set_overlay_visible(on)
        if on and self.viewer.overlay_pixmap().isNull():
            self._request_overlay()
        if not on:
            self.status.setText("")

    def _overlay_opacity(self) -> float:
        return self.opacity_slider.value() / 100

    def _opacity_changed(self, _value: int) -> None:
        self.viewer.set_overlay_opacity(self._overlay_opacity())

    def _side_by_side_toggled(self, on: bool) -> None:
        self.plain_viewer.setVisible(on)
        if on:  # two halves of the same size, so that linked zoom shows the same region in both
            width = max(2, self.pictures_splitter.width())
            self.pictures_splitter.setSizes([width // 2, width - width // 2])
        if on and not self.overlay_box.isChecked():
            self.overlay_box.setChecked(True)
        self.viewer.fit()

    # ---- tile map ----------------------------------------------------------------------------
    def _scale_legend(self) -> QWidget:
        legend = QWidget()
        layout = QHBoxLayout(legend)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QLabel()
        bar.setPixmap(QPixmap.fromImage(pil_to_qimage(tilemap.scale_bar(90, 12))))
        bar.setToolTip("Tile map colour scale: P(fake) from 0 (green) through 0.5 (yellow) to 1 (red)")
        for widget in (QLabel("P(fake) 0"), bar, QLabel("1")):
            layout.addWidget(widget)
        return legend

    def _tiles_toggled(self, on: bool) -> None:
        self.tile_scale.setVisible(on)
        if on and self.viewer.tile_map_pixmap().isNull():
            self._draw_tile_map()
        self.viewer.set_tile_map_visible(on)
        if not on:
            self.hover_label.setText("")

    def _picture_size(self) -> tuple[int, int] | None:
        """The analysed picture's size (EXIF orientation applied), in which the tiles are placed."""
        row, preview = self._row, self._preview
        if row is None or preview is None or not row.width or not row.height:
            return None
        return tilemap.oriented_size((row.width, row.height), (preview.image.width(), preview.image.height()))

    def _draw_tile_map(self) -> None:
        size = self._picture_size()
        if not self._tiles or size is None:
            if self._row is not None and self._preview is not None:
                self.status.setText("No tile map: the file has no tile scores in this case (scan it again).")
            return
        factor = min(1.0, TILE_MAP_SIDE / max(size))
        layer = tilemap.render(self._tiles, size, (max(1, round(size[0] * factor)), max(1, round(size[1] * factor))))
        self.viewer.set_tile_map(QPixmap.fromImage(pil_rgba_to_qimage(layer)))
        self.viewer.set_tile_map_visible(self.tiles_box.isChecked())
        best = tilemap.strongest(self._tiles)
        self.status.setText(f"Tile map: {len(self._tiles)} tile(s); the strongest, framed, at ({best.x}, {best.y}) "
                            f"{best.w}×{best.h} has P(fake) {best.p_fake:.3f}")

    def _pointer_moved(self, x: float, y: float) -> None:
        size, preview = self._picture_size(), self._preview
        if not self.viewer.tile_map_shown() or size is None or preview is None:
            return
        scale_x, scale_y = size[0] / max(1, preview.image.width()), size[1] / max(1, preview.image.height())
        tile = tilemap.tile_at(self._tiles, x * scale_x, y * scale_y)
        self.hover_label.setText("" if tile is None else
                                 f"tile ({tile.x}, {tile.y}) {tile.w}×{tile.h}: P(fake) {tile.p_fake:.3f}")

    # ---- facts -------------------------------------------------------------------------------
    def _render_facts(self) -> None:
        row = self._row
        if row is None:
            self.facts.setHtml("")
            return
        e = html.escape
        dims = f"{row.width} × {row.height} px" if row.width and row.height else "unknown"
        if self._preview is not None and self._preview.reduced:
            w, h = self._preview.image.width(), self._preview.image.height()
            dims += f" (shown reduced to {w} × {h})"
        modified = format_timestamp(row.modified)  # in UTC with its offset, as in the CSV and the report
        facts = [("File", PurePath(row.path).name), ("Path", row.path), ("SHA-256", row.sha256 or ""),
                 ("Size", f"{human_size(row.size)}" + (f" ({row.size:,} bytes)" if row.size else "")),
                 ("Dimensions", dims), ("Format", row.format or ""), ("Modified", modified)]
        if row.error:
            facts.append(("Unreadable", row.error))
        rows_html = "".join(f"<tr><td><b>{e(k)}</b></td><td style='padding-left:8px'>{e(v)}</td></tr>"
                            for k, v in facts)
        parts = [f"<h3 style='margin:2px'>{e(verdict(row))}"
                 + (f" — P(fake) {row.p_fake:.3f}" if row.p_fake is not None else "") + "</h3>",
                 f"<table>{rows_html}</table>", "<h4 style='margin:6px 0 2px'>Scores in this case</h4>"]
        if self._scores:
            lines = "".join(
                f"<tr><td>{e(s.model_name)} <span style='color:gray'>({e(s.model_id)}"
                f"{', ensemble' if s.architecture == 'ensemble' else ''})</span></td>"
                f"<td style='padding-left:8px'>{'' if s.p_fake is None else f'{s.p_fake:.3f}'}</td>"
                f"<td style='padding-left:8px'>{e(outcome(s.label, s.error))}</td></tr>"
                for s in self._scores)
            parts.append(f"<table>{lines}</table>")
        else:
            parts.append("<p>Not scored by any model yet.</p>")
        parts.append("<h4 style='margin:6px 0 2px'>Evidence in the file</h4>")
        parts.append(self._findings_html(self._findings))
        parts.append("<h4 style='margin:6px 0 2px'>Metadata</h4>")
        if self._exif_text:
            parts.append(self._exif_text)
        else:
            parts.append("<p>Loading…</p>" if self._preview is None and not row.error else "<p>None found.</p>")
        self.facts.setHtml("".join(parts))

    @staticmethod
    def _findings_html(findings: list[Finding]) -> str:
        if not findings:
            return "<p>Not checked yet (scan the file to check its metadata).</p>"
        items = "".join(f"<li><b>{html.escape(f.strength)}</b> — {html.escape(f.message)}</li>" for f in findings)
        return f"<ul style='margin:0'>{items}</ul>"

    @staticmethod
    def _exif_html(preview: Preview) -> str:
        if not preview.exif:
            return "<p>No EXIF or text metadata (common for generated images, but also for stripped photos).</p>"
        rows = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td style='padding-left:8px'>{html.escape(v)}</td>"
                       "</tr>" for k, v in preview.exif)
        return f"<table>{rows}</table>"
