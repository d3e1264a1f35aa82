"""The memo as Markdown (the dashboard's and the terminal's) and as a self-contained HTML page."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from pulse.bi.memo.findings import Finding
from pulse.bi.memo.stats import ALPHA, format_p
from pulse.common.figures import figure_png
from pulse.common.report_html import img, page


@dataclass
class Memo:
    source: str
    as_of: str
    insights: list[Finding]
    hypotheses: list[Finding]
    candidates: list[Finding] = field(default_factory=list)

    def dashboard_markdown(self) -> str:
        """The memo as the main dashboard shows it: without the SQL, pointing to where the SQL is."""
        return self.markdown(with_sql=False) + f"\n\n_Queries behind every number: `pulse report memo --source {self.source}`._"

    def markdown(self, with_sql: bool = True) -> str:
        out = [f"# Pulse memo — source `{self.source}`, data through {self.as_of}", ""]
        out += [method(len(self.candidates)), "", "## Insights", ""]
        for i, f in enumerate(self.insights, 1):
            out.append(f"**{i}. {f.title}.** {f.text} _({evidence(f, len(self.candidates))})_")
            if with_sql:
                out += ["", "```sql", f.sql.strip(), "```"]
            out.append("")
        out += ["## Hypotheses", ""]
        for i, f in enumerate(self.hypotheses, 1):
            h = f.hypothesis or {}
            out.append(f"**H{i}. {h['statement']}** Evidence: {f.text}")
            out += [
                f"- metric: {h['metric']}",
                f"- segment: {h['segment']}",
                f"- expected effect: {h['expected']}",
                f"- experiment: {h['experiment']}",
                "",
            ]
        return "\n".join(out)


def method(candidates: int) -> str:
    return (
        f"Chosen from {candidates} candidate findings: significant at p < {ALPHA} after Holm's correction for "
        f"testing {candidates} at once, ranked by relative effect size (two-proportion z-test, or chi-square across "
        "groups, for rates; Welch's t-test, or Welch's ANOVA across groups, for daily means); where fewer than three "
        "are significant, the strongest leads follow, marked as such."
    )


def evidence(f: Finding, candidates: int) -> str:
    said = f"effect {f.effect:.0%}, {f.test}, p {format_p(f.p_value)}, Holm-adjusted p {format_p(f.p_judged)}"
    return said if f.significant else f"{said}: a lead, not significant once {candidates} tests are accounted for"


def _md_inline(text: str) -> str:
    """The memo's Markdown subset (**bold**, `code`, _italic_) as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"<i>\1</i>", text)


def write(memo: Memo, out_dir: Path) -> tuple[Path, Path]:
    """memo.md and a self-contained memo.html (charts embedded as data URIs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "memo.md", out_dir / "memo.html"
    md_path.write_text(memo.markdown())
    parts = [
        f"<h1>Pulse memo — source <code>{html.escape(memo.source)}</code>, data through {memo.as_of}</h1>",
        f"<p>{html.escape(method(len(memo.candidates)))}</p><h2>Insights</h2>",
    ]
    for i, f in enumerate(memo.insights, 1):
        parts.append(f"<h3>{i}. {html.escape(f.title)}</h3><p>{_md_inline(f.text)}</p>")
        parts.append(f"<p><small>{html.escape(evidence(f, len(memo.candidates)))}</small></p>")
        if f.plot:
            parts.append(img(figure_png(f.plot, f.title), f.title))
        parts.append(f"<pre>{html.escape(f.sql.strip())}</pre>")
    parts.append("<h2>Hypotheses</h2>")
    for i, f in enumerate(memo.hypotheses, 1):
        h = f.hypothesis or {}
        parts.append(f"<h3>H{i}. {html.escape(h['statement'])}</h3><p>Evidence: {_md_inline(f.text)}</p><ul>")
        for label in ("metric", "segment", "expected", "experiment"):
            parts.append(f"<li><b>{label}</b>: {html.escape(h[label])}</li>")
        parts.append("</ul>")
        if f.plot and f not in memo.insights:
            parts.append(img(figure_png(f.plot, f.title), f.title))
    html_path.write_text(page("Pulse memo", parts))
    return md_path, html_path
