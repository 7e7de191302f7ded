// Files dropped onto a record page's "Files and notes" panel are uploaded at once, all in one request.
(function () {
  "use strict";
  document.querySelectorAll("[data-crm-dropzone]").forEach(function (form) {
    var input = form.querySelector("input[type=file]");
    var target = document.getElementById("content") || form;
    ["dragenter", "dragover"].forEach(function (name) {
      target.addEventListener(name, function (event) {
        event.preventDefault();
        form.classList.add("is-dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      target.addEventListener(name, function () { form.classList.remove("is-dragging"); });
    });
    target.addEventListener("drop", function (event) {
      event.preventDefault();
      if (!event.dataTransfer || !event.dataTransfer.files.length) { return; }
      input.files = event.dataTransfer.files;
      form.submit();
    });
  });
})();
