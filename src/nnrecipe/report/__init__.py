"""The self-contained HTML report of a run, and the comparison page of several (R5, R7, C9, C10, D14).
matplotlib and Jinja2 are imported when a page is made, not with nnrecipe."""

from .build import compare_context, report_context, write_compare, write_report

__all__ = ["compare_context", "report_context", "write_compare", "write_report"]
