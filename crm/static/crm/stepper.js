/* A record page's stage stepper: click a stage to move the record there (the board's move endpoint,
 * the same service); a won or lost stage opens the board's dialog (reason, conversion, confirmation).
 * The page reloads on success so every panel shows the new state.
 */
(function () {
  "use strict";

  const stepper = document.querySelector("[data-stepper]");
  if (!stepper) return;
  const message = document.querySelector("[data-stepper-message]");

  function say(text) {
    if (message) {
      message.textContent = text;
      message.classList.add("errornote");
    }
  }

  async function answerOf(response) {
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("application/json")) return response.json();
    return { ok: false, error: `Refused (HTTP ${response.status}).` };
  }

  stepper.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-stage-id]");
    if (!button || button.disabled) return;
    const stage = button.dataset.stageId;
    let data;
    if (button.dataset.closing && window.CrmBoardDialog) {
      data = await window.CrmBoardDialog.open({
        url: stepper.dataset.dialogUrl,
        record: stepper.dataset.record,
        stage: stage,
        csrfToken: stepper.dataset.csrfToken,
      });
      if (data === null) return;
    } else {
      stepper.querySelectorAll("button").forEach((b) => (b.disabled = true));
      try {
        const response = await fetch(stepper.dataset.moveUrl, {
          method: "POST",
          body: new URLSearchParams({ record: stepper.dataset.record, stage: stage }),
          credentials: "same-origin",
          headers: { "X-CSRFToken": stepper.dataset.csrfToken, "X-Requested-With": "XMLHttpRequest" },
        });
        data = await answerOf(response);
        if (!response.ok) data.ok = false;
      } catch (error) {
        data = { ok: false, error: "The server could not be reached; nothing changed." };
      }
    }
    if (data.ok) {
      window.location.reload();
      return;
    }
    stepper.querySelectorAll("button").forEach((b) => (b.disabled = b.getAttribute("aria-current") === "step"));
    say(data.error || "The move was refused.");
  });
})();
