// Saved views and the column chooser on a CRM changelist: the picker opens a view as soon as one is
// chosen, and the chooser's arrows reorder the columns (the form submits them in their order).
(function () {
  "use strict";

  function init(root) {
    var select = root.querySelector("[data-view-select]");
    if (select) {
      select.addEventListener("change", function () {
        select.form.submit();
      });
    }
    var list = root.querySelector("[data-column-list]");
    if (list) {
      list.addEventListener("click", function (event) {
        var button = event.target.closest("[data-move]");
        if (!button) {
          return;
        }
        var item = button.closest("li");
        if (button.dataset.move === "up" && item.previousElementSibling) {
          list.insertBefore(item, item.previousElementSibling);
        } else if (button.dataset.move === "down" && item.nextElementSibling) {
          list.insertBefore(item.nextElementSibling, item);
        }
        button.focus();
      });
    }
    var deleteForm = root.querySelector("[data-view-delete-form]");
    if (deleteForm) {
      deleteForm.addEventListener("submit", function (event) {
        if (!window.confirm("Delete this view?")) {
          event.preventDefault();
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-saved-views]").forEach(init);
  });
})();
