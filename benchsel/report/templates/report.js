(function () {
  "use strict";
  function sortKey(cell) {
    var raw = cell ? cell.getAttribute("data-sort") : null;
    if (raw === null || raw === "") { return null; }
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }
  function compare(a, b, ascending) {
    if (a === null) { return b === null ? 0 : 1; }
    if (b === null) { return -1; }
    if (a < b) { return ascending ? -1 : 1; }
    if (a > b) { return ascending ? 1 : -1; }
    return 0;
  }
  function sortTable(table, index, header) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var current = header.getAttribute("aria-sort");
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = current === "none" || current === null ? !numeric : current === "descending";
    rows.sort(function (x, y) { return compare(sortKey(x.cells[index]), sortKey(y.cells[index]), ascending); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.setAttribute("aria-sort", "none"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortTable(table, index, th); }); }
    });
  });
  function openAll(open) {
    Array.prototype.forEach.call(document.querySelectorAll("details.case"), function (d) { d.open = open; });
  }
  var expand = document.getElementById("expand-all");
  var collapse = document.getElementById("collapse-all");
  if (expand) { expand.addEventListener("click", function () { openAll(true); }); }
  if (collapse) { collapse.addEventListener("click", function () { openAll(false); }); }
  document.documentElement.setAttribute("data-ready", "1");
})();
