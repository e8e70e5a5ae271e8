// Sort a table by a clicked header: numbers numerically (commas, %, × ignored; a range "a–b" by a), text
// alphabetically, blanks ("—") last. Also opens every <details> before printing so nothing is hidden on paper.
(function () {
  function cellKey(row, col) {
    var cell = row.cells[col];
    if (cell && cell.hasAttribute("data-sort")) { return parseFloat(cell.getAttribute("data-sort")); }
    var text = cell ? cell.textContent.trim() : "";
    if (/^[-+]?[0-9.]/.test(text)) {
      var n = parseFloat(text.replace(/[,%\u00d7\s]/g, ""));
      if (!isNaN(n)) { return n; }
    }
    return text === "\u2014" ? null : text.toLowerCase();
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
  // Printing opens the cut values and case lists, not the config as run (pages of JSON; it stays in the file).
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details:not(.config-json)").forEach(function (d) { d.open = true; });
  });
})();
