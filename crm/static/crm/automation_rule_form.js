/* The automation rule form: the condition and action rows follow the chosen model; rows are added
   and removed here. The server renders the rows and reads what they post; no library. */
(function () {
  "use strict";

  function data() {
    var el = document.getElementById("automation-rule-catalog");
    return el ? JSON.parse(el.textContent) : { operators: {}, no_value: [], models: {} };
  }

  var catalog = null;

  function model() {
    var select = document.querySelector('select[name="model"]');
    var label = select ? select.value : "";
    return catalog.models[label] || { fields: [], actions: [] };
  }

  function option(value, text, selected) {
    var el = document.createElement("option");
    el.value = value;
    el.textContent = text;
    if (selected) el.selected = true;
    return el;
  }

  function rowName(row, suffix) {
    var box = row.closest(".rule-rows");
    return box.dataset.name + "-" + row.dataset.index + "-" + suffix;
  }

  function fieldOf(row) {
    var path = row.querySelector(".rule-field").value;
    return model().fields.find(function (f) { return f.path === path; });
  }

  function fillFields(row) {
    var select = row.querySelector(".rule-field");
    var current = select.value;
    select.innerHTML = "";
    model().fields.forEach(function (f) {
      select.appendChild(option(f.path, f.label + " (" + f.path + ")", f.path === current));
    });
  }

  function fillOps(row) {
    var select = row.querySelector(".rule-op");
    var current = select.value;
    var field = fieldOf(row);
    var ops = field ? field.ops : Object.keys(catalog.operators);
    select.innerHTML = "";
    ops.forEach(function (op) { select.appendChild(option(op, catalog.operators[op], op === current)); });
  }

  function fillValue(row) {
    var cell = row.querySelector(".rule-value-cell");
    var old = cell.querySelector(".rule-value");
    var current = old ? old.value : "";
    var field = fieldOf(row);
    var op = row.querySelector(".rule-op").value;
    var input;
    if (field && field.choices.length && op !== "in" && op !== "not_in") {
      input = document.createElement("select");
      field.choices.forEach(function (c) { input.appendChild(option(c[0], c[1], c[0] === current)); });
    } else {
      input = document.createElement("input");
      input.type = "text";
      input.value = current;
      if (op === "in" || op === "not_in") input.placeholder = "values, comma-separated";
    }
    input.name = rowName(row, "value");
    input.className = "rule-value";
    input.setAttribute("aria-label", "value");
    input.disabled = catalog.no_value.indexOf(op) !== -1;
    cell.innerHTML = "";
    cell.appendChild(input);
  }

  function kindOf(row) {
    var kind = row.querySelector(".rule-kind").value;
    return model().actions.find(function (a) { return a.kind === kind; });
  }

  function fillKinds(row) {
    var select = row.querySelector(".rule-kind");
    var current = select.value;
    select.innerHTML = "";
    model().actions.forEach(function (a) { select.appendChild(option(a.kind, a.label, a.kind === current)); });
  }

  function fillParams(row) {
    var cell = row.querySelector(".rule-params");
    var kind = kindOf(row);
    cell.innerHTML = "";
    if (!kind) return;
    kind.params.forEach(function (p) {
      var label = document.createElement("label");
      label.className = "rule-param";
      label.appendChild(document.createTextNode(p.name + " "));
      var name = rowName(row, kind.kind + "-" + p.name);
      var input;
      if (p.type === "boolean") {
        var hidden = document.createElement("input");
        hidden.type = "hidden";
        hidden.name = name;
        label.appendChild(hidden);
        input = document.createElement("input");
        input.type = "checkbox";
        input.value = "on";
      } else if (p.type === "json") {
        input = document.createElement("textarea");
        input.rows = 2;
        input.cols = 40;
        input.placeholder = "JSON";
      } else {
        input = document.createElement("input");
        input.type = p.type === "number" ? "number" : "text";
        if (p.type === "ids") input.placeholder = "ids, comma-separated";
      }
      input.name = name;
      label.appendChild(input);
      cell.appendChild(label);
    });
  }

  function cell(child) {
    var td = document.createElement("td");
    if (child) td.appendChild(child);
    return td;
  }

  function select(className, label) {
    var el = document.createElement("select");
    el.className = className;
    el.setAttribute("aria-label", label);
    return el;
  }

  function addRow(box) {
    var total = box.querySelector(".rule-rows-total");
    var index = parseInt(total.value, 10) || 0;
    total.value = index + 1;
    var row = document.createElement("tr");
    row.className = "rule-row";
    row.dataset.index = index;
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button rule-row-remove";
    remove.textContent = "Remove";
    if (box.dataset.rows === "conditions") {
      var field = select("rule-field", "field");
      field.name = box.dataset.name + "-" + index + "-field";
      var op = select("rule-op", "operator");
      op.name = box.dataset.name + "-" + index + "-op";
      var value = cell();
      value.className = "rule-value-cell";
      row.append(cell(field), cell(op), value, cell(remove));
      box.querySelector("tbody").appendChild(row);
      fillFields(row);
      fillOps(row);
      fillValue(row);
    } else {
      var kind = select("rule-kind", "action");
      kind.name = box.dataset.name + "-" + index + "-kind";
      var params = cell();
      params.className = "rule-params";
      var number = cell();
      number.className = "rule-row-number";
      row.append(number, cell(kind), params, cell(remove));
      box.querySelector("tbody").appendChild(row);
      fillKinds(row);
      fillParams(row);
      renumber(box);
    }
  }

  function renumber(box) {
    box.querySelectorAll(".rule-row-number").forEach(function (td, i) { td.textContent = i + 1; });
  }

  function refresh() {
    document.querySelectorAll('.rule-rows[data-rows="conditions"] .rule-row').forEach(function (row) {
      fillFields(row);
      fillOps(row);
      fillValue(row);
    });
    document.querySelectorAll('.rule-rows[data-rows="actions"] .rule-row').forEach(function (row) {
      var before = row.querySelector(".rule-kind").value;
      fillKinds(row);
      if (row.querySelector(".rule-kind").value !== before) fillParams(row);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    catalog = data();
    document.addEventListener("change", function (event) {
      var target = event.target;
      var row = target.closest ? target.closest(".rule-row") : null;
      if (target.matches('select[name="model"]')) refresh();
      else if (row && target.classList.contains("rule-field")) { fillOps(row); fillValue(row); }
      else if (row && target.classList.contains("rule-op")) fillValue(row);
      else if (row && target.classList.contains("rule-kind")) fillParams(row);
    });
    document.addEventListener("click", function (event) {
      var target = event.target;
      var box = target.closest ? target.closest(".rule-rows") : null;
      if (!box) return;
      if (target.classList.contains("rule-row-add")) {
        event.preventDefault();
        addRow(box);
      } else if (target.classList.contains("rule-row-remove")) {
        event.preventDefault();
        var row = target.closest(".rule-row");
        var next = row.nextElementSibling;
        if (next && next.classList.contains("rule-row-errors")) next.remove();
        row.remove();
        renumber(box);
      }
    });
  });
})();
