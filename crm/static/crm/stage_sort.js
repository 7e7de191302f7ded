/* Order a pipeline's stages by dragging their rows in the stage inline; the sequence inputs follow.
 *
 * Each row gets a handle; dropping a row renumbers every row's sequence (0, 1, 2, ...) in the order
 * shown, and saving the pipeline stores it. Typing a sequence by hand still works. A row added with
 * "Add another stage" comes last. No framework: plain HTML5 drag and drop.
 */
(function () {
  "use strict";

  // The admin loads form media in the page head, before the inline exists.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }

  function setUp() {
    const group = document.getElementById("stages-group");
    if (!group) return;
    const table = group.querySelector("table");
    if (!table || !table.tHead) return;
    const tbody = table.tBodies[0];

    const header = document.createElement("th");
    header.className = "crm-drag-cell";
    header.innerHTML = '<span class="visually-hidden">Order</span>';
    table.tHead.rows[0].insertBefore(header, table.tHead.rows[0].firstElementChild);

    function stageRows() {
      return Array.from(tbody.querySelectorAll("tr.form-row:not(.empty-form)"));
    }

    function sequenceInput(row) {
      return row.querySelector('input[name$="-sequence"]');
    }

    function renumber() {
      stageRows().forEach(function (row, index) {
        const input = sequenceInput(row);
        if (input) input.value = index;
      });
    }

    function addHandle(row) {
      if (row.querySelector(".crm-drag-handle")) return;
      const cell = document.createElement("td");
      cell.className = "crm-drag-cell";
      const handle = document.createElement("span");
      handle.className = "crm-drag-handle";
      handle.title = "Drag to reorder";
      handle.textContent = "⠿";
      cell.appendChild(handle);
      row.insertBefore(cell, row.firstElementChild);
      // Only the handle starts a drag, so text in the inputs can still be selected with the mouse.
      handle.addEventListener("mousedown", function () {
        row.draggable = true;
      });
      handle.addEventListener("mouseup", function () {
        row.draggable = false;
      });
    }

    // The empty template row too, so rows added later are cloned with their handle.
    tbody.querySelectorAll("tr.form-row").forEach(addHandle);

    let dragged = null;

    tbody.addEventListener("dragstart", function (event) {
      const row = event.target.closest ? event.target.closest("tr.form-row") : null;
      if (!row || !row.draggable) return;
      dragged = row;
      row.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", row.id);
    });

    tbody.addEventListener("dragover", function (event) {
      if (!dragged) return;
      const row = event.target.closest ? event.target.closest("tr.form-row") : null;
      if (!row || row === dragged || row.classList.contains("empty-form")) return;
      event.preventDefault();
      const box = row.getBoundingClientRect();
      const after = event.clientY > box.top + box.height / 2;
      row.parentNode.insertBefore(dragged, after ? row.nextSibling : row);
    });

    tbody.addEventListener("drop", function (event) {
      if (dragged) event.preventDefault();
    });

    tbody.addEventListener("dragend", function () {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged.draggable = false;
      dragged = null;
      renumber();
    });

    document.addEventListener("formset:added", function (event) {
      if (!event.detail || event.detail.formsetName !== "stages") return;
      const row = event.target;
      addHandle(row);
      const input = sequenceInput(row);
      const taken = stageRows()
        .filter((other) => other !== row)
        .map((other) => parseInt((sequenceInput(other) || {}).value, 10))
        .filter((value) => !Number.isNaN(value));
      if (input) input.value = taken.length ? Math.max(...taken) + 1 : 0;
    });
  }
})();
