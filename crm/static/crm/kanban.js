/* Kanban board for the CRM admin: drag a card to another stage, load more cards per column.
 *
 * The page renders the board; this script only moves cards. A drop POSTs the record and the target
 * stage to the board's move URL (which calls the same move-stage service as the API). On success
 * the server answers with the fresh count and total of every column; on refusal the card goes back
 * where it was and the server's reason is shown. No framework, no network beyond the site.
 */
(function () {
  "use strict";

  const board = document.querySelector("[data-kanban]");
  if (!board) return;

  const csrfToken = board.dataset.csrfToken;
  const canMove = board.dataset.canMove !== "false";
  const messages = document.querySelector("[data-kanban-messages]");
  let dragged = null;
  let origin = null;
  let originNext = null;

  function showMessage(text, level) {
    if (!messages) return;
    const item = document.createElement("li");
    item.className = level === "error" ? "error" : "success";
    item.textContent = text;
    item.setAttribute("role", level === "error" ? "alert" : "status");
    messages.replaceChildren(item);
  }

  function columnOf(element) {
    return element && element.closest ? element.closest("[data-stage-id]") : null;
  }

  function updateColumn(summary) {
    const column = board.querySelector(`[data-stage-id="${summary.stage_id}"]`);
    if (!column) return;
    column.querySelector("[data-count]").textContent = summary.count;
    column.querySelector("[data-total]").textContent = summary.total_display;
    const weighted = column.querySelector("[data-weighted]");
    if (weighted && summary.weighted_display) weighted.textContent = summary.weighted_display;
    column.dataset.count = summary.count;
  }

  function putBack(card, from, before) {
    const list = from.querySelector("[data-cards]");
    if (before && before.parentNode === list) {
      list.insertBefore(card, before);
    } else {
      list.appendChild(card);
    }
  }

  async function readAnswer(response) {
    // A refusal from the move endpoint is JSON; anything else (a CSRF failure page, a proxy
    // error) is reported by its status so the user knows the card did not move.
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("application/json")) return response.json();
    return { ok: false, error: `The move was refused (HTTP ${response.status}). Reload the page and try again.` };
  }

  async function move(card, target, from, before) {
    const body = new URLSearchParams({ record: card.dataset.id, stage: target.dataset.stageId });
    card.classList.add("saving");
    let data;
    try {
      const response = await fetch(board.dataset.moveUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken, "X-Requested-With": "XMLHttpRequest" },
        body: body,
        credentials: "same-origin",
      });
      data = await readAnswer(response);
      if (!response.ok) data.ok = false;
    } catch (error) {
      data = { ok: false, error: "The server could not be reached; the card was not moved." };
    }
    card.classList.remove("saving");
    applyAnswer(card, from, before, data);
  }

  // A drop on a won or lost column: the dialog asks for what the transition needs (the lost reason,
  // the conversion's choices, a confirmation); cancelling puts the card back.
  async function close(card, target, from, before) {
    card.classList.add("saving");
    const data = await window.CrmBoardDialog.open({
      url: board.dataset.dialogUrl,
      record: card.dataset.id,
      stage: target.dataset.stageId,
      csrfToken: csrfToken,
    });
    card.classList.remove("saving");
    if (data === null) {
      putBack(card, from, before);
      showMessage("Nothing changed.", "success");
      return;
    }
    applyAnswer(card, from, before, data);
  }

  function drop(card, column, from, before) {
    column.querySelector("[data-cards]").prepend(card);
    if (column.dataset.closing && window.CrmBoardDialog) {
      close(card, column, from, before);
    } else {
      move(card, column, from, before);
    }
  }

  function applyAnswer(card, from, before, data) {
    if (!data.ok) {
      putBack(card, from, before);
      card.classList.add("refused");
      window.setTimeout(() => card.classList.remove("refused"), 1500);
      showMessage(data.error || "The move was refused.", "error");
      return;
    }
    (data.columns || []).forEach(updateColumn);
    if (data.card_html) {
      const wrapper = document.createElement("div");
      wrapper.innerHTML = data.card_html.trim();
      const fresh = wrapper.firstElementChild;
      if (fresh) {
        // The card still counts where the server first listed it, for "load more" offsets.
        fresh.dataset.originStage = card.dataset.originStage;
        card.replaceWith(fresh);
      }
    }
    showMessage(data.message || "Moved.", "success");
  }

  board.addEventListener("dragstart", function (event) {
    const card = event.target.closest ? event.target.closest("[data-card]") : null;
    if (!card || card.dataset.locked === "true" || !canMove) {
      event.preventDefault();
      return;
    }
    dragged = card;
    origin = columnOf(card);
    originNext = card.nextElementSibling;
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.id);
  });

  board.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    board.querySelectorAll(".drop-target").forEach((c) => c.classList.remove("drop-target"));
  });

  board.addEventListener("dragover", function (event) {
    const column = columnOf(event.target);
    if (!column || !dragged) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    column.classList.add("drop-target");
  });

  board.addEventListener("dragleave", function (event) {
    const column = columnOf(event.target);
    if (column && !column.contains(event.relatedTarget)) column.classList.remove("drop-target");
  });

  board.addEventListener("drop", function (event) {
    const column = columnOf(event.target);
    if (!column || !dragged) return;
    event.preventDefault();
    column.classList.remove("drop-target");
    const card = dragged;
    const from = origin;
    const before = originNext;
    dragged = null;
    card.classList.remove("dragging");
    if (column === from) return;
    drop(card, column, from, before);
  });

  // Touch and pen: drag by the card's handle with pointer events (HTML5 drag and drop is mouse-only).
  let pointerDrag = null;

  board.addEventListener("pointerdown", function (event) {
    if (event.pointerType === "mouse" || !canMove) return;
    const handle = event.target.closest ? event.target.closest("[data-handle]") : null;
    const card = handle ? handle.closest("[data-card]") : null;
    if (!card || card.dataset.locked === "true") return;
    event.preventDefault();
    pointerDrag = { card: card, from: columnOf(card), before: card.nextElementSibling, id: event.pointerId };
    card.classList.add("dragging");
    if (handle.setPointerCapture) {
      try { handle.setPointerCapture(event.pointerId); } catch (error) { /* synthetic pointers */ }
    }
  });

  function columnAt(event) {
    const under = document.elementFromPoint(event.clientX, event.clientY);
    return under && board.contains(under) ? columnOf(under) : null;
  }

  document.addEventListener("pointermove", function (event) {
    if (!pointerDrag || event.pointerId !== pointerDrag.id) return;
    event.preventDefault();
    board.querySelectorAll(".drop-target").forEach((c) => c.classList.remove("drop-target"));
    const column = columnAt(event);
    if (column) column.classList.add("drop-target");
  });

  function endPointerDrag(event, cancelled) {
    if (!pointerDrag || event.pointerId !== pointerDrag.id) return;
    const drag = pointerDrag;
    pointerDrag = null;
    drag.card.classList.remove("dragging");
    board.querySelectorAll(".drop-target").forEach((c) => c.classList.remove("drop-target"));
    const column = cancelled ? null : columnAt(event);
    if (!column || column === drag.from) return;
    drop(drag.card, column, drag.from, drag.before);
  }

  document.addEventListener("pointerup", (event) => endPointerDrag(event, false));
  document.addEventListener("pointercancel", (event) => endPointerDrag(event, true));

  // Quick add: a card in a column, created by the same service as the add form.
  board.addEventListener("submit", async function (event) {
    const form = event.target.closest("[data-quick-add]");
    if (!form) return;
    event.preventDefault();
    const column = columnOf(form);
    let data;
    try {
      const response = await fetch(board.dataset.addUrl, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken, "X-Requested-With": "XMLHttpRequest" },
      });
      data = await readAnswer(response);
      if (!response.ok) data.ok = false;
    } catch (error) {
      data = { ok: false, error: "The server could not be reached; nothing was added." };
    }
    if (!data.ok) {
      showMessage(data.error || "The card was not added.", "error");
      return;
    }
    (data.columns || []).forEach(updateColumn);
    const wrapper = document.createElement("div");
    wrapper.innerHTML = (data.card_html || "").trim();
    const fresh = wrapper.firstElementChild;
    if (fresh) {
      fresh.dataset.originStage = "";
      column.querySelector("[data-cards]").prepend(fresh);
    }
    form.reset();
    showMessage(data.message || "Added.", "success");
  });

  board.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-load-more]");
    if (!button) return;
    const column = columnOf(button);
    const stageId = column.dataset.stageId;
    const list = column.querySelector("[data-cards]");
    // Offset = the cards the server listed in this column that are still in it; a card dropped
    // here from elsewhere may come again in the next page and is skipped below.
    const served = Array.from(list.querySelectorAll("[data-card]")).filter(
      (card) => card.dataset.originStage === stageId
    ).length;
    const url = new URL(board.dataset.cardsUrl, window.location.href);
    url.searchParams.set("stage", stageId);
    url.searchParams.set("offset", served);
    button.disabled = true;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const wrapper = document.createElement("div");
      wrapper.innerHTML = await response.text();
      wrapper.querySelectorAll("[data-card]").forEach(function (card) {
        if (!board.querySelector(`[data-card][data-id="${card.dataset.id}"]`)) list.appendChild(card);
      });
      if (response.headers.get("X-Has-More") !== "true") button.remove();
    } catch (error) {
      showMessage("More cards could not be loaded.", "error");
    } finally {
      button.disabled = false;
    }
  });
})();
