// The process owners' modeller page (/processes/<process_id>/edit): bpmn-js's Modeler with our
// properties panel; "Check" and "Deploy" post the diagram to the server, which validates it exactly
// as a deployment does, and the errors it finds are shown on the diagram.
import Modeler from "bpmn-js/lib/Modeler";

import spiffworkflow from "../modeller/moddle.js";
import { createPanel } from "../modeller/panel.js";
import { createProblems } from "../modeller/problems.js";

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

async function start(root) {
  const status = root.querySelector("[data-status]");
  const say = (text) => { status.textContent = text; };
  const [diagram, vocabulary] = await Promise.all([getJson(root.dataset.diagramUrl), getJson(root.dataset.vocabularyUrl)]);
  const modeler = new Modeler({ container: root.querySelector("#modeller-canvas"), moddleExtensions: { spiffworkflow } });
  const { warnings } = await modeler.importXML(diagram.xml);
  modeler.get("canvas").zoom("fit-viewport", "auto");
  createPanel(root.querySelector("[data-panel]"), modeler, vocabulary);
  const problems = createProblems(modeler, root.querySelector("[data-summary]"), diagram.file);
  let version = diagram.version;
  let unsaved = false;
  modeler.get("eventBus").on("commandStack.changed", () => { unsaved = true; });
  window.addEventListener("beforeunload", (event) => { if (unsaved) event.preventDefault(); });
  if (warnings.length) {
    say(`Version ${version} opened, but ${warnings.length} part(s) of the diagram could not be read and would be lost `
        + `on deploying: ${warnings.map((w) => w.message).join("; ")}`);
  } else {
    say(`Version ${version} of ${diagram.file} opened.`);
  }

  async function send(url, extra) {
    document.activeElement?.blur(); // commit the field being edited first
    const { xml } = await modeler.saveXML({ format: true });
    say("Checking…");
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": root.dataset.csrfToken },
      body: JSON.stringify({ xml, version, ...extra }),
    });
    const answer = await response.json().catch(() => ({ ok: false, message: `The server answered ${response.status}.`, errors: [] }));
    if (answer.ok && answer.warnings?.length) {
      problems.show(answer.warnings, "Warning: lanes that may have nobody", "warning");
    } else if (answer.ok) {
      problems.clear();
    } else if (response.status === 409) {
      problems.show([{ file: diagram.file, element: null, message: answer.message }], "Changed by someone else");
    } else {
      problems.show(answer.errors.length ? answer.errors : [{ file: diagram.file, element: null, message: answer.message }]);
    }
    say(answer.message);
    return answer;
  }

  root.querySelector("[data-check]").addEventListener("click", () => send(root.dataset.checkUrl, {}));
  root.querySelector("[data-deploy]").addEventListener("click", async () => {
    const note = root.querySelector("[data-note]");
    const answer = await send(root.dataset.deployUrl, { note: note.value });
    if (answer.ok && answer.version > version) {
      version = answer.version;
      unsaved = false;
      note.value = "";
    }
  });
  window.pepModeller = modeler;
  root.dataset.ready = "true";
}

const root = document.querySelector("[data-modeller]");
if (root) {
  start(root).catch((error) => {
    root.querySelector("[data-status]").textContent = `The modeller could not start: ${error.message}`;
  });
}
