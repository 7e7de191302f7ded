/* The header's global search: results grouped by kind as you type, driven by the keyboard.
 * "/" focuses the box, arrows move through the hits, Enter opens one (or the full results page),
 * Escape closes. Without this script the box still submits to the results page.
 */
(function () {
  "use strict";

  const form = document.querySelector("[data-global-search]");
  if (!form) return;
  const input = form.querySelector("[data-global-search-input]");
  const panel = form.querySelector("[data-global-search-results]");
  let timer = null;
  let active = -1;
  let latest = 0;

  function links() {
    return Array.from(panel.querySelectorAll("a[data-hit]"));
  }

  function highlight(index) {
    const all = links();
    all.forEach((link, i) => link.classList.toggle("is-active", i === index));
    active = index;
    if (all[index]) all[index].scrollIntoView({ block: "nearest" });
  }

  function close() {
    panel.hidden = true;
    active = -1;
  }

  function render(data) {
    panel.replaceChildren();
    if (!data.groups.length) {
      const empty = document.createElement("p");
      empty.className = "crm-search-empty";
      empty.textContent = `Nothing found for “${data.q}”.`;
      panel.appendChild(empty);
    }
    data.groups.forEach(function (group) {
      const section = document.createElement("div");
      section.className = "crm-search-group";
      section.dataset.searchGroup = group.key;
      const heading = document.createElement("div");
      heading.className = "crm-search-group-label";
      heading.textContent = group.label;
      section.appendChild(heading);
      group.hits.forEach(function (hit) {
        const link = document.createElement("a");
        link.href = hit.url;
        link.dataset.hit = "";
        link.setAttribute("role", "option");
        const title = document.createElement("span");
        title.className = "crm-search-title";
        title.textContent = hit.title;
        link.appendChild(title);
        if (hit.subtitle) {
          const sub = document.createElement("span");
          sub.className = "crm-search-sub";
          sub.textContent = hit.subtitle;
          link.appendChild(sub);
        }
        section.appendChild(link);
      });
      panel.appendChild(section);
    });
    panel.hidden = false;
    active = -1;
  }

  async function run() {
    const term = input.value.trim();
    if (term.length < 2) {
      close();
      return;
    }
    const ticket = ++latest;
    const url = new URL(form.action, window.location.href);
    url.searchParams.set("q", term);
    url.searchParams.set("format", "json");
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok || ticket !== latest) return;
      render(await response.json());
    } catch (error) {
      /* the box still submits to the results page */
    }
  }

  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(run, 150);
  });

  input.addEventListener("keydown", function (event) {
    const all = links();
    if (event.key === "ArrowDown" && all.length) {
      event.preventDefault();
      highlight(Math.min(active + 1, all.length - 1));
    } else if (event.key === "ArrowUp" && all.length) {
      event.preventDefault();
      highlight(Math.max(active - 1, 0));
    } else if (event.key === "Enter" && active >= 0 && all[active]) {
      event.preventDefault();
      window.location.href = all[active].href;
    } else if (event.key === "Escape") {
      close();
    }
  });

  document.addEventListener("keydown", function (event) {
    const typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "/" && !typing) {
      event.preventDefault();
      input.focus();
    }
  });

  document.addEventListener("click", function (event) {
    if (!form.contains(event.target)) close();
  });
})();
