"""Reports: the certificate of analysis (HTML and PDF) with its plots."""

from exocheck.report.coa import ExpiryPrediction, render_html, render_pdf, write_coa

__all__ = ["ExpiryPrediction", "render_html", "render_pdf", "write_coa"]
