"""The page's inline CSS and JavaScript: no external fonts, scripts or images, so the file stands alone."""

from __future__ import annotations

# Only inline styles/scripts and data: URLs may load; anything else is blocked (and would show up as an
# error in the browser test), which keeps the report self-contained by construction.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
)

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg-soft: #f6f8fa; --warn: #bc4c00;
        --warn-bg: #fff8c5; --bad: #b2182b; --good: #1a7f37; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1180px; padding: 1rem 1.5rem 3rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0.2rem 0; }
h2 { font-size: 1.3rem; border-bottom: 1px solid var(--line); padding-bottom: 0.2rem; margin-top: 2rem; }
h3 { font-size: 1.08rem; margin: 1.4rem 0 0.4rem; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
                   font-size: 0.86em; }
pre { background: var(--bg-soft); padding: 0.6rem; overflow-x: auto; max-height: 28rem; }
.meta { color: var(--muted); margin: 0.2rem 0 0.8rem; }
nav.toc { font-size: 0.9rem; margin: 0.6rem 0 1rem; display: flex; flex-wrap: wrap; gap: 0.2rem 0.9rem; }
nav.toc a { white-space: nowrap; }
.warnings { border: 2px solid var(--warn); border-left-width: 8px; background: var(--warn-bg);
            padding: 0.6rem 1rem; margin: 1rem 0; border-radius: 4px; }
.warnings h2 { border: 0; margin: 0.2rem 0 0.4rem; color: var(--warn); font-size: 1.15rem; }
.warnings.none { border-color: var(--good); background: #dafbe1; }
.warnings.none h2 { color: var(--good); }
.warnings ul { margin: 0.2rem 0; padding-left: 1.2rem; }
.warnings li { margin: 0.3rem 0; }
.warnings details { font-size: 0.88rem; }
.warnings details li { margin: 0.1rem 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0.4rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
ul.findings { padding-left: 1.2rem; }
ul.findings li { margin: 0.35rem 0; }
.finding[data-measured="false"], .not-measured { color: var(--muted); font-style: italic; }
figure { margin: 0.8rem 0 1.2rem; }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 0.2rem; }
svg.chart { max-width: 100%; height: auto; display: block; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.82rem; margin: 0.4rem 0 1rem; }
th, td { border-bottom: 1px solid var(--line); padding: 0.22rem 0.5rem; text-align: left; vertical-align: top; }
thead th { background: var(--bg-soft); position: sticky; top: 0; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.cases td:nth-child(3) { min-width: 16rem; }
td { overflow-wrap: break-word; }
table.comparison td:last-child { min-width: 18rem; }
table.sortable thead th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable thead th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num, td:has(> .num) { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: 600; }
.status-ok { color: var(--good); }
.status-failed, .status-wrong, .status-regression { color: var(--bad); }
.status-skipped, .status-not_on_cpu, .status-missing { color: var(--warn); }
.status-improvement { color: var(--good); }
.run-block { margin-top: 1.5rem; }
h4.backend { margin: 0.8rem 0 0.2rem; }
.note { color: var(--muted); font-size: 0.9rem; border-left: 3px solid var(--line); padding: 0.1rem 0 0.1rem 0.7rem;
        margin: 0.5rem 0; }
.note p, .note ul { margin: 0.2rem 0; }
@media (max-width: 640px) { body { padding: 0.6rem; } dl.facts { grid-template-columns: 1fr; } }
@media print {
  html { font-size: 10pt; }
  body { max-width: none; padding: 0; }
  nav.toc, .sort-hint { display: none; }
  a { color: inherit; text-decoration: none; }
  figure, .warnings, dl.facts, ul.findings li { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  .run-block + .run-block { break-before: page; }
  .table-wrap { overflow: visible; }
  thead th { position: static; }
  pre { max-height: none; white-space: pre-wrap; }
  .warnings { background: none; }
}
"""

# Sort a table by a clicked header: numbers numerically (commas, %, × ignored), text alphabetically,
# blanks ("—") last. Also opens every <details> before printing so nothing is hidden on paper.
JS = """
(function () {
  function cellKey(row, col) {
    var text = row.cells[col] ? row.cells[col].textContent.trim() : "";
    if (/^[-+]?[0-9.]/.test(text)) {
      var n = parseFloat(text.replace(/[,%\\u00d7\\s]/g, ""));
      if (!isNaN(n)) { return n; }
    }
    return text === "\\u2014" ? null : text.toLowerCase();
  }
  function compare(a, b) {
    if (a === b) { return 0; }
    if (a === null) { return 1; }
    if (b === null) { return -1; }
    if (typeof a !== typeof b) { return typeof a === "number" ? -1 : 1; }
    return a < b ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    var headers = Array.prototype.slice.call(table.tHead.rows[table.tHead.rows.length - 1].cells);
    headers.forEach(function (th, col) {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var k1 = cellKey(r1, col), k2 = cellKey(r2, col);
          if (k1 === null || k2 === null) { return compare(k1, k2); }
          return ascending ? compare(k1, k2) : compare(k2, k1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
"""
