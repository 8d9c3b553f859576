// Validation errors shown on the diagram: the element marked in red with its message beside it, and
// a GOV.UK error summary whose entries select the element and scroll to it. An error that names no
// element of this diagram (another file, the whole bundle) is listed in the summary only. Warnings
// (the diagram can be deployed all the same) are marked in amber, in a summary that is no error.
const MARKERS = { error: "app-invalid", warning: "app-warning" };

export function createProblems(modeler, summary, file) {
  const canvas = modeler.get("canvas");
  const overlays = modeler.get("overlays");
  const registry = modeler.get("elementRegistry");
  const selection = modeler.get("selection");
  let marked = [];
  let marker = MARKERS.error;

  // The shape an error's element id belongs to: the element itself, or the event that holds the
  // event definition (a message's payload is checked on its bpmn:messageEventDefinition).
  function shapeFor(id) {
    if (!id) return null;
    const shape = registry.get(id);
    if (shape && shape.type !== "label") return shape;
    return registry.find((e) => (e.businessObject?.eventDefinitions || []).some((d) => d.id === id)) || null;
  }

  function clear() {
    for (const id of marked) canvas.removeMarker(id, marker);
    marked = [];
    overlays.remove({ type: "app-problem" });
    summary.replaceChildren();
    summary.hidden = true;
  }

  function show(errors, title = "There is a problem", kind = "error") {
    clear();
    marker = MARKERS[kind];
    const byShape = new Map();
    const items = [];
    for (const error of errors) {
      const shape = error.file === file ? shapeFor(error.element) : null;
      const where = error.file === file ? "" : `${error.file}: `;
      items.push({ text: `${where}${error.message}${error.element && !shape ? ` (${error.element})` : ""}`, shape });
      if (shape) byShape.set(shape, [...(byShape.get(shape) || []), error.message]);
    }
    for (const [shape, messages] of byShape) {
      canvas.addMarker(shape.id, marker);
      marked.push(shape.id);
      const note = document.createElement("div");
      note.className = kind === "warning" ? "app-problem-note app-problem-note--warning" : "app-problem-note";
      note.textContent = messages.join(" · ");
      overlays.add(shape.id, "app-problem", { position: { top: shape.height + 6, left: 0 }, html: note });
    }
    render(items, title, kind);
  }

  function render(items, title, kind) {
    const box = element("div", kind === "warning" ? "govuk-error-summary app-warning-summary" : "govuk-error-summary");
    const alert = element("div");
    alert.setAttribute("role", "alert");
    const list = element("ul", "govuk-list govuk-error-summary__list");
    for (const item of items) {
      const entry = element("li");
      if (item.shape) {
        const link = element("a", "", item.text);
        link.href = "#modeller-canvas";
        link.addEventListener("click", (event) => {
          event.preventDefault();
          canvas.scrollToElement(item.shape);
          selection.select(item.shape);
        });
        entry.append(link);
      } else {
        entry.textContent = item.text;
      }
      list.append(entry);
    }
    const body = element("div", "govuk-error-summary__body");
    body.append(list);
    alert.append(element("h2", "govuk-error-summary__title", title), body);
    box.append(alert);
    box.tabIndex = -1;
    summary.append(box);
    summary.hidden = false;
    box.focus();
  }

  return { show, clear };
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
