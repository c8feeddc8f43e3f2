"""An audit report as text, JSON or a self-contained HTML page.

Row ids and parameter names can come from visitors' requests (a seeded or foreign row, a
hostile parameter name), so every one is made safe for where it goes: terminal escapes
(:func:`~pixel_middleware.report.terminal.safe`) in all three formats, since any of them may be
printed, then HTML escaping in the page. The page has inline CSS, no script, nothing loaded.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

from ..report.terminal import safe
from .model import AuditReport, CheckResult, Example, Status

FORMATS = ("text", "json", "html")
SOURCES = ("store", "spool", "receipts", "settings")
_MAX_NAME = 60
_MAX_ROW = 200


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def example_text(example: Example) -> str:
    """``row (name, name)``, clipped and terminal-safe."""
    row = safe(_clip(example.row, _MAX_ROW))
    if not example.names:
        return row
    return f"{row} ({', '.join(safe(_clip(n, _MAX_NAME)) for n in example.names)})"


def _by_source(results: Iterable[CheckResult]) -> dict[str, list[CheckResult]]:
    grouped: dict[str, list[CheckResult]] = {source: [] for source in SOURCES}
    for result in results:
        grouped.setdefault(result.source, []).append(result)
    return {source: items for source, items in grouped.items() if items}


_WORDS: tuple[tuple[Status, str], ...] = (
    ("fail", "failed"),
    ("warn", "warning(s)"),
    ("pass", "passed"),
    ("skip", "skipped"),
)


def verdict(report: AuditReport) -> str:
    """``PASSED`` or ``FAILED``, the count of each status, and the exit status."""
    counts = ", ".join(f"{report.count(status)} {word}" for status, word in _WORDS)
    head = "PASSED" if report.passed else "FAILED"
    return f"{head}: {counts} (exit status {report.exit_status})"


def _header(report: AuditReport) -> list[tuple[str, str]]:
    spool = (
        f"{report.spool_lines} line(s) in {', '.join(report.folders)}"
        if report.folders
        else f"no spool folder (spool_dir {report.spool_dir})"
    )
    return [
        ("store", f"{report.store} (from {report.store_source})"),
        ("settings", report.settings_source),
        ("rows", f"{report.rows_checked} checked, {report.anonymous_rows} anonymous"),
        ("spool", spool),
    ]


def render_text(report: AuditReport) -> str:
    lines = [f"pixel_middleware audit, {report.generated_at}"]
    lines += [f"{label + ':':<9} {safe(value)}" for label, value in _header(report)]
    width = max(len(r.name) for r in report.results)
    for source, results in _by_source(report.results).items():
        lines += ["", source]
        for r in results:
            count = "-" if r.status == "skip" else str(r.count)
            text = r.description + (f"; {r.note}" if r.note else "")
            lines.append(f"  {r.status.upper():<4}  {r.name:<{width}}  {count:>6}  {safe(text)}")
            if r.examples:
                shown = ", ".join(example_text(e) for e in r.examples)
                more = f" and {r.count - len(r.examples)} more" if r.count > len(r.examples) else ""
                lines.append(f"  {'':<4}  e.g. {shown}{more}")
    lines += ["", "result: " + verdict(report)]
    return "\n".join(lines) + "\n"


def as_dict(report: AuditReport) -> dict[str, Any]:
    return {
        "audit": "pixel_middleware",
        "generated_at": report.generated_at,
        "store": report.store,
        "store_source": report.store_source,
        "settings_source": report.settings_source,
        "spool_dir": report.spool_dir,
        "spool_folders": list(report.folders),
        "rows_checked": report.rows_checked,
        "anonymous_rows": report.anonymous_rows,
        "spool_lines": report.spool_lines,
        "passed": report.passed,
        "exit_status": report.exit_status,
        "summary": {status: report.count(status) for status, _ in _WORDS},
        "checks": [
            {
                "name": r.name,
                "source": r.source,
                "status": r.status,
                "count": r.count,
                "description": r.description,
                "note": r.note,
                "examples": [
                    {
                        "row": _clip(e.row, _MAX_ROW),
                        "names": [_clip(n, _MAX_NAME) for n in e.names],
                    }
                    for e in r.examples
                ],
            }
            for r in report.results
        ],
    }


def render_json(report: AuditReport) -> str:
    # ensure_ascii escapes every control and bidirectional character as \uXXXX except DEL,
    # which can only occur inside a string: escape it too, so the output is terminal-safe.
    text = json.dumps(as_dict(report), indent=2, ensure_ascii=True)
    return text.replace("\x7f", "\\u007f") + "\n"


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;
color:#1b1b1b;background:#fff}
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
.verdict{font-weight:700;padding:.6rem .8rem;border-radius:4px;margin:1rem 0}
.verdict.passed{background:#e6f4ea;color:#0d5223}.verdict.failed{background:#fce8e6;color:#8a1c12}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th:nth-child(1){width:4.5rem}th:nth-child(2){width:22rem}th:nth-child(3){width:4rem}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #ddd}
td.count{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:700;font-size:.8rem;padding:.1rem .4rem;border-radius:3px}
.pass{background:#e6f4ea;color:#0d5223}.fail{background:#fce8e6;color:#8a1c12}
.warn{background:#fef7e0;color:#6b4a00}.skip{background:#eee;color:#444}
code,.examples{font-family:ui-monospace,monospace;font-size:.85rem}
.examples{overflow-wrap:anywhere}
"""


def _e(text: str) -> str:
    return html.escape(safe(text), quote=True)


def _row_html(r: CheckResult) -> str:
    count = "-" if r.status == "skip" else str(r.count)
    note = f"<br><em>{_e(r.note)}</em>" if r.note else ""
    examples = ""
    if r.examples:
        items = "".join(f"<li>{html.escape(example_text(e))}</li>" for e in r.examples)
        more = f"<li>and {r.count - len(r.examples)} more</li>" if r.count > len(r.examples) else ""
        examples = f'<ul class="examples">{items}{more}</ul>'
    return (
        f'<tr><td><span class="status {r.status}">{r.status.upper()}</span></td>'
        f'<td><code>{_e(r.name)}</code></td><td class="count">{count}</td>'
        f"<td>{_e(r.description)}{note}{examples}</td></tr>"
    )


def render_html(report: AuditReport) -> str:
    header = "".join(
        f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in _header(report)
    )
    tables = "".join(
        f"<h2>{_e(source)}</h2><table><thead><tr><th>status</th><th>check</th>"
        f'<th class="count">count</th><th>what it looks for; examples (row ids, names)</th>'
        f"</tr></thead><tbody>{''.join(_row_html(r) for r in results)}</tbody></table>"
        for source, results in _by_source(report.results).items()
    )
    state = "passed" if report.passed else "failed"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pixel_middleware audit, {_e(report.generated_at)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>pixel_middleware audit</h1><p>{_e(report.generated_at)}</p>"
        f"<dl>{header}</dl>"
        f'<p class="verdict {state}">{_e(verdict(report))}</p>'
        f"{tables}</body></html>\n"
    )


def render(report: AuditReport, fmt: str) -> str:
    """``report`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report)
    return render_text(report)
