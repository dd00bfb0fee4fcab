"""The PDF case report, built from the case database alone so that the CLI and the desktop app give the same
document. No Qt here: ReportLab lays it out, matplotlib (Agg) draws the histogram."""
from app.report.build import ReportError, ReportInfo, build_report

__all__ = ["ReportError", "ReportInfo", "build_report"]
