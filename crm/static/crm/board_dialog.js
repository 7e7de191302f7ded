/* The won and lost dialogs of the boards and of a record's stage stepper.
 *
 * CrmBoardDialog.open({url, record, stage, csrfToken}) loads the record's transition form (mark lost
 * with its reason, convert a lead, win a deal) from the board's dialog URL into a <dialog>, posts it
 * back, shows the server's errors in place, and resolves with the server's answer once it succeeded
 * (the same JSON as a move), or with null when the user cancels. The server runs the same services
 * as the transition pages; this only carries the form.
 */
(function () {
  "use strict";

  function dialogElement() {
    let dialog = document.querySelector("[data-crm-dialog]");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.className = "crm-dialog";
      dialog.setAttribute("data-crm-dialog", "");
      dialog.innerHTML = "<div data-dialog-body></div>";
      document.body.appendChild(dialog);
    }
    return dialog;
  }

  function enhance(body) {
    // The admin's autocomplete widgets (select2), when the page loaded them.
    const jq = window.django && window.django.jQuery;
    if (jq && jq.fn && jq.fn.djangoAdminSelect2) {
      jq(body).find(".admin-autocomplete").djangoAdminSelect2();
    }
  }

  async function answerOf(response) {
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("application/json")) return response.json();
    return { ok: false, error: `Refused (HTTP ${response.status}). Reload the page and try again.` };
  }

  function open(options) {
    const dialog = dialogElement();
    const body = dialog.querySelector("[data-dialog-body]");
    return new Promise(async function (resolve) {
      let settled = false;
      function finish(value) {
        if (settled) return;
        settled = true;
        if (dialog.open) dialog.close();
        body.replaceChildren();
        resolve(value);
      }
      const url = new URL(options.url, window.location.href);
      url.searchParams.set("card", options.record);
      url.searchParams.set("column", options.stage);
      let response;
      try {
        response = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } });
      } catch (error) {
        resolve({ ok: false, error: "The server could not be reached." });
        return;
      }
      if (!response.ok) {
        resolve(await answerOf(response));
        return;
      }
      body.innerHTML = await response.text();
      dialog.addEventListener("cancel", () => finish(null), { once: true });

      function wire() {
        enhance(body);
        const form = body.querySelector("[data-dialog-form]");
        if (!form) return;
        form.querySelector("[data-dialog-cancel]").addEventListener("click", () => finish(null));
        const first = form.querySelector("select, input:not([type=hidden]), textarea");
        if (first) first.focus();
        form.addEventListener("submit", async function (event) {
          event.preventDefault();
          const submit = form.querySelector("[data-dialog-submit]");
          submit.disabled = true;
          let data;
          try {
            const posted = await fetch(url, {
              method: "POST",
              body: new FormData(form),
              credentials: "same-origin",
              headers: { "X-CSRFToken": options.csrfToken, "X-Requested-With": "XMLHttpRequest" },
            });
            data = await answerOf(posted);
            if (!posted.ok) data.ok = false;
          } catch (error) {
            data = { ok: false, error: "The server could not be reached; nothing changed." };
          }
          if (data.ok) {
            finish(data);
            return;
          }
          if (data.form_html) {
            body.innerHTML = data.form_html;
            wire();
            return;
          }
          finish(data);
        });
      }
      wire();
      dialog.showModal();
    });
  }

  window.CrmBoardDialog = { open: open };
})();
