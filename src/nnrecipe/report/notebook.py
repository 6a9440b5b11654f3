"""What a Jupyter cell shows for nnrecipe's results (issue 23): the `_repr_html_` of a Diagnosis (the doctor's
verdicts), an Audit (the data audit's findings) and a Run (a finished run: its test metrics beside the simple
baselines, the verdicts that need attention, its plots inline, a link to report.html). The classes' methods
delegate here, so that the HTML lives in one module.

Every text that comes from data or from a user (column names, class labels, notes, summaries, fixes) is
HTML-escaped: a '<script>' in a column name shows as text. Plots are embedded as base64 PNG, as in
report.html, so the notebook needs no file beside it. Reads its objects by their attributes (no import of
checks, data or recipes: report stays below them)."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# the report's palette for the statuses (report/templates/base.html.j2): green, amber, red, grey, purple
STATUS_COLOURS = {"pass": "#2e7d32", "warn": "#b26a00", "fail": "#c62828", "skipped": "#757575", "error": "#6a1b9a"}
ATTENTION = ("fail", "error", "warn")  # the statuses a run's view lists, worst first
MAX_PLOTS = 8  # PNGs of the run folder shown inline (an image run leaves five)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_STYLE = ("<style>.nnrecipe table{border-collapse:collapse;margin:4px 0}.nnrecipe th,.nnrecipe td{border:1px solid "
          "#ddd;padding:2px 6px;text-align:left;vertical-align:top}.nnrecipe th{background:#f5f5f5}"
          ".nnrecipe .status{font-weight:bold;color:#fff;border-radius:3px;padding:0 4px}</style>")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e("-" if value is None else value)
    return f"{value:.4g}"


def _status(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#757575")
    return f'<span class="status" style="background:{colour}">{_e(status)}</span>'


def verdicts_table(verdicts: Iterable[Any]) -> str:
    """A table of verdicts: id, check, status (coloured), summary, fix (shown when the check did not pass)."""
    rows = [f"<tr><td>{_e(v.id)}</td><td>{_e(v.name)}</td><td>{_status(v.status)}</td><td>{_e(v.summary)}</td>"
            f"<td>{_e(v.fix) if v.status != 'pass' else ''}</td></tr>" for v in verdicts]
    if not rows:
        return "<p>no verdicts</p>"
    return ("<table><thead><tr><th>id</th><th>check</th><th>status</th><th>summary</th><th>fix</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _counts(verdicts: Iterable[Any]) -> str:
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.status] = counts.get(v.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def diagnosis_html(diagnosis: Any) -> str:
    """A Diagnosis: its verdicts as a table, then the counts of each status."""
    return (f'{_STYLE}<div class="nnrecipe">{verdicts_table(diagnosis)}<p>{_e(_counts(diagnosis))}</p></div>')


def audit_html(audit: Any) -> str:
    """An Audit: what was audited (source, rows, columns, target and task), the findings, the counts."""
    info: Mapping[str, Any] = getattr(audit, "info", {}) or {}
    head = (f"audit of {info.get('source') or 'the table'}: {info.get('rows')} rows, {info.get('columns')} columns, "
            f"target '{info.get('target')}' ({info.get('task')})")
    return (f'{_STYLE}<div class="nnrecipe"><p><b>{_e(head)}</b></p>{verdicts_table(audit)}'
            f"<p>{_e(_counts(audit))}</p></div>")


def _metrics_table(test: Mapping[str, Any], baselines: Mapping[str, Any]) -> str:
    """The run's test metrics, one row each, with each simple baseline's value beside it (results.json)."""
    models: Mapping[str, Mapping[str, Any]] = baselines.get("models") or {}
    head = "".join(f"<th>{_e(name)}</th>" for name in models)
    rows = "".join(f"<tr><td>{_e(metric)}</td><td><b>{_number(value)}</b></td>"
                   + "".join(f"<td>{_number((scores or {}).get(metric))}</td>" for scores in models.values())
                   + "</tr>" for metric, value in test.items() if not isinstance(value, (dict, list)))
    return (f"<table><thead><tr><th>test metric</th><th>this run</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
            if rows else "<p>no test metrics (the run kept no test rows)</p>")


def _plots(run_dir: Path, history: list[dict[str, Any]], best_epoch: int | None) -> list[tuple[str, str]]:
    """(name, data URI) of the curves (drawn from metrics.jsonl, as report.html draws them) and of the run
    folder's own PNGs (the label distribution, an image run's pictures, prune.png)."""
    from . import plots

    found = [("curves", plots.curves(history, best_epoch))] if history else []
    for file in sorted(run_dir.glob("*.png"))[:MAX_PLOTS]:
        data = file.read_bytes()
        if data[:8] == PNG_SIGNATURE:  # a damaged or foreign file is left out, not shown broken
            found.append((file.name, plots.png_uri(data)))
    return found


def _link(file: Path) -> str:
    """The report's path relative to the notebook's folder (the kernel's working folder), which Jupyter serves;
    an absolute path when it lies on another drive."""
    try:
        return os.path.relpath(file)
    except ValueError:
        return str(file)


def run_html(run: Any) -> str:
    """A finished Run: the headline, its test metrics beside the baselines, the verdicts (the doctor's and the
    audit's) that need attention, its plots inline, and a link to report.html."""
    run_dir = Path(run.run_dir)
    results: Mapping[str, Any] = run.results or {}
    try:
        name, value = run.metric
    except KeyError:  # no headline metric in the record: a dash
        name, value = "-", None
    verdicts = [*run.verdicts, *(run.audit or [])]
    attention = sorted((v for v in verdicts if v.status in ATTENTION), key=lambda v: ATTENTION.index(v.status))
    passed = sum(v.status == "pass" for v in verdicts)
    note = (run.config or {}).get("note")
    parts = [f"<h3>{_e(run_dir.name)}</h3>",
             f"<p>{_e(run.task)}: test {_e(name)} <b>{_number(value)}</b>; best epoch {_number(run.best_epoch)} "
             f"of {_number(results.get('epochs_run'))}" + (f"; note: {_e(note)}" if note else "") + "</p>",
             # where the test figures come from when no test split was held out (test_fraction 0)
             *([f"<p>test metrics measured on {_e(results['test_measured_on'])}</p>"]
               if results.get("test_measured_on") else []),
             _metrics_table(run.test or {}, results.get("baselines") or {})]
    if attention:
        parts += [f"<p><b>{len(attention)} verdict(s) need attention</b> ({passed} passed)</p>",
                  verdicts_table(attention)]
    else:
        parts.append(f"<p>every verdict passed ({passed})</p>" if verdicts else "<p>no checks ran</p>")
    parts += [f'<figure><img src="{uri}" alt="{_e(alt)}" style="max-width:100%"></figure>'
              for alt, uri in _plots(run_dir, list(run.history or []), run.best_epoch)]
    report = run_dir / "report.html"
    parts.append(f'<p><a href="{_e(_link(report))}" target="_blank">report.html</a> (the whole run)</p>'
                 if report.is_file() else f"<p>no report.html yet: <code>nnrecipe report {_e(run_dir)}</code></p>")
    parts.append(f"<p><code>{_e(run_dir)}</code></p>")
    return f'{_STYLE}<div class="nnrecipe">{"".join(parts)}</div>'


__all__ = ["audit_html", "diagnosis_html", "run_html", "verdicts_table"]
