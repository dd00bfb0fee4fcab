"""The training wizard's last page: the new model's card and, on request, its evaluation on held-out data.

Validation numbers come from a split of the training data; what an examiner needs is how the model does on
images it never saw. "Evaluate" runs training.evaluate (the same code as `forensight evaluate`) on a worker
thread: metrics, ROC and precision-recall curves, the confusion matrix and, on request, the robustness sweeps,
all saved in an evaluation folder.
"""
from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QTextBrowser,
                               QVBoxLayout, QWizardPage)

from app.services.training import TrainingOutcome
from models.library import data_home

METRICS = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"), ("roc_auc", "ROC-AUC"),
           ("average_precision", "Average precision"), ("f1_fake", "F1 (fake)"), ("mcc", "MCC"),
           ("log_loss", "Log loss"))
PLOTS = (("roc", "ROC curve"), ("pr", "Precision-recall curve"), ("confusion_matrix", "Confusion matrix"),
         ("robustness", "Robustness: AP and accuracy under JPEG, blur and downscaling"))


class ResultPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("The new detector")
        self.card_view = QTextBrowser()
        self.make_default = QCheckBox("Use it for the next scans (make it the default model)")
        self.eval_folder = QLineEdit()
        self.eval_folder.setPlaceholderText("Held-out images: a folder with real/ and fake/, or with a test/ split")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.eval_button = QPushButton("Evaluate")
        self.eval_button.clicked.connect(self.evaluate)
        self.sweeps = QCheckBox("with robustness sweeps (JPEG, blur, downscaling on up to 400 images; slower)")
        self.eval_status = QLabel("")
        self.eval_status.setWordWrap(True)
        self.evaluation: dict | None = None
        row = QHBoxLayout()
        row.addWidget(QLabel("Evaluate on"))
        row.addWidget(self.eval_folder, 1)
        row.addWidget(browse)
        row.addWidget(self.eval_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.card_view, 1)
        layout.addLayout(row)
        layout.addWidget(self.sweeps)
        layout.addWidget(self.eval_status)
        layout.addWidget(self.make_default)

    def initializePage(self) -> None:
        wizard = self.wizard()
        self.card_view.setHtml(result_html(wizard.train_page.outcome))
        dataset = wizard.data_page.dataset
        if dataset is not None and "test" in dataset.splits:  # the data's own test split: never trained on
            self.eval_folder.setText(str(dataset.root))

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Held-out images", self.eval_folder.text())
        if chosen:
            self.eval_folder.setText(chosen)

    def evaluate(self) -> None:
        wizard = self.wizard()
        folder = Path(self.eval_folder.text().strip()).expanduser()
        dataset = wizard.data_page.dataset
        if dataset is not None and folder == dataset.root and "test" not in dataset.splits:
            self.eval_status.setText("These are the training images (the folder has no test/ split): choose "
                                     "images the model has not seen.")
            return
        model_id = wizard.train_page.outcome.entry.card.id
        out = data_home() / "evaluations" / f"{model_id}-{datetime.now():%Y%m%d-%H%M%S}"
        device, sweeps = wizard.device, self.sweeps.isChecked()
        self.eval_button.setEnabled(False)
        self.eval_status.setText(f"Evaluating {model_id} on {folder}…")

        def work(report) -> dict:
            from models.library import ModelLibrary
            from training.evaluate import evaluate

            return evaluate(ModelLibrary().load(model_id), folder, out, split="auto", device=device, sweeps=sweeps,
                            progress=lambda stage, done, total: report(done, total))

        wizard.tasks.start(work, done=self._evaluated, failed=self._evaluation_failed, progress=self._show_progress)

    def _show_progress(self, done: int, total: int) -> None:
        self.eval_status.setText(f"Scoring {done:,} of {total:,} images…")

    def _evaluated(self, report: dict) -> None:
        self.evaluation = report
        self.eval_button.setEnabled(True)
        folder = Path(report["files"]["roc"]).parent
        self.eval_status.setText(f"Evaluation saved in {folder} (report.json, predictions.csv, plots).")
        self.card_view.setHtml(result_html(self.wizard().train_page.outcome) + evaluation_html(report))

    def _evaluation_failed(self, reason: str) -> None:
        self.eval_button.setEnabled(True)
        self.eval_status.setText(f"<b>Evaluation failed:</b> {html.escape(reason)}")

    def validatePage(self) -> bool:
        wizard = self.wizard()
        if self.make_default.isChecked():
            wizard.made_default = wizard.train_page.outcome.entry.card.id
            wizard.library.set_default(wizard.made_default)
        return True


def result_html(outcome: TrainingOutcome) -> str:
    card = outcome.entry.card
    validation = card.metrics.get("validation", {})
    return (f"<h3>{html.escape(card.id)}</h3><p>{html.escape(card.architecture)}, {html.escape(card.trained_on)}. "
            f"Stopped as <b>{html.escape(outcome.result.status)}</b>; best epoch {outcome.result.best_epoch}.</p>"
            f"<p>On its validation split ({validation.get('n', '?')} images):</p>{metrics_table(validation)}"
            f"<p><i>{html.escape(card.limitations)}</i></p>"
            f"<p>Checkpoints: {html.escape(str(outcome.result.run_dir))}.</p>")


def evaluation_html(report: dict) -> str:
    data, metrics = report["data"], report["metrics"]
    plots = "".join(f"<p>{label}<br/><img src='{Path(report['files'][key]).as_uri()}' width='360'/></p>"
                    for key, label in PLOTS if report["files"].get(key))
    skipped = f" ({len(report['excluded'])} unreadable files left out)" if report.get("excluded") else ""
    return (f"<h3>Evaluation on held-out images</h3><p>{html.escape(data['root'])}, {html.escape(data['split'])} "
            f"split: {data['count']} images{skipped}, threshold {report['model']['threshold']:g}.</p>"
            f"{metrics_table(metrics)}{plots}")


def metrics_table(metrics: dict) -> str:
    rows = "".join(f"<tr><td>{label}</td><td align='right'>{_number(metrics.get(key))}</td></tr>"
                   for key, label in METRICS)
    return f"<table>{rows}</table>"


def _number(value) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.3f}"
