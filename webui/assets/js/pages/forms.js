// Repeatable answers on the task pages (webui/templates/_form.html, data-module="app-repeat"): "Add another
// target" and "Remove Target 2" without reloading the page. The buttons still post the form as before
// (`_do=add:targets`, `_do=remove:targets.1`), so the server keeps the draft and numbers the items; this
// script sends that same request in the background and swaps in the list the server answers with. Without
// JavaScript, or if the request fails, the button submits the form as an ordinary round trip.

function liveRegion(form) {
  let region = form.querySelector(".app-repeat-status");
  if (!region) {
    region = document.createElement("div");
    region.className = "app-repeat-status govuk-visually-hidden";
    region.setAttribute("aria-live", "polite");
    form.appendChild(region);
  }
  return region;
}

function focusAfter(group, adding) {
  const items = group.querySelectorAll(".app-repeat");
  if (adding && items.length) {
    const field = items[items.length - 1].querySelector("input:not([type=hidden]), textarea, select");
    if (field) return field.focus();
  }
  const legend = group.querySelector("legend");
  if (legend) {
    legend.setAttribute("tabindex", "-1");
    legend.focus();
  }
}

async function swap(form, group, button) {
  const body = new FormData(form);
  body.set("_do", button.value);
  const response = await fetch(form.getAttribute("action") || window.location.href, {
    method: "POST", body, credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
  });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.getElementById(group.id);
  if (!fresh) throw new Error("the answer holds no such list");
  const adding = button.value.startsWith("add:");
  const before = group.querySelectorAll(".app-repeat").length;
  const imported = document.importNode(fresh, true);
  group.replaceWith(imported);
  // GOV.UK Frontend's components (a conditional reveal inside a new item) start in the list swapped in: static/app.js
  imported.dispatchEvent(new CustomEvent("app:swapped", { bubbles: true }));
  const after = imported.querySelectorAll(".app-repeat").length;
  const legend = imported.querySelector("legend");
  const name = legend ? legend.textContent.replace(/\s*\(optional\)\s*$/, "").trim() : "the list";
  liveRegion(form).textContent = adding
    ? `Added item ${after} to ${name}.`
    : `Removed an item from ${name}; ${after} left.`;
  focusAfter(imported, adding && after > before);
}

function enhance(form) {
  form.addEventListener("click", (event) => {
    const button = event.target.closest('button[name="_do"]');
    if (!button || !/^(add|remove):/.test(button.value)) return;
    const group = button.closest('[data-module="app-repeat"]');
    if (!group || !group.id) return;
    event.preventDefault();
    button.disabled = true;
    swap(form, group, button).catch(() => {
      button.disabled = false;
      form.requestSubmit(button); // the ordinary round trip
    });
  });
  form.dataset.repeatReady = "true";
}

for (const form of document.querySelectorAll("form")) {
  if (form.querySelector('[data-module="app-repeat"]')) enhance(form);
}
