// Validation errors shown on the diagram: the element marked in red with its message beside it, and
// a GOV.UK error summary whose entries select the element and scroll to it. An error that names no
// element of this diagram (another file, the whole bundle) is listed in the summary only.
const MARKER = "app-invalid";

export function createProblems(modeler, summary, file) {
  const canvas = modeler.get("canvas");
  const overlays = modeler.get("overlays");
  const registry = modeler.get("elementRegistry");
  const selection = modeler.get("selection");
  let marked = [];

  // The shape an error's element id belongs to: the element itself, or the event that holds the
  // event definition (a message's payload is checked on its bpmn:messageEventDefinition).
  function shapeFor(id) {
    if (!id) return null;
    const shape = registry.get(id);
    if (shape && shape.type !== "label") return shape;
    return registry.find((e) => (e.businessObject?.eventDefinitions || []).some((d) => d.id === id)) || null;
  }

  function clear() {
    for (const id of marked) canvas.removeMarker(id, MARKER);
    marked = [];
    overlays.remove({ type: "app-problem" });
    summary.replaceChildren();
    summary.hidden = true;
  }

  function show(errors, title = "There is a problem") {
    clear();
    const byShape = new Map();
    const items = [];
    for (const error of errors) {
      const shape = error.file === file ? shapeFor(error.element) : null;
      const where = error.file === file ? "" : `${error.file}: `;
      items.push({ text: `${where}${error.message}${error.element && !shape ? ` (${error.element})` : ""}`, shape });
      if (shape) byShape.set(shape, [...(byShape.get(shape) || []), error.message]);
    }
    for (const [shape, messages] of byShape) {
      canvas.addMarker(shape.id, MARKER);
      marked.push(shape.id);
      const note = document.createElement("div");
      note.className = "app-problem-note";
      note.textContent = messages.join(" · ");
      overlays.add(shape.id, "app-problem", { position: { top: shape.height + 6, left: 0 }, html: note });
    }
    render(items, title);
  }

  function render(items, title) {
    const box = element("div", "govuk-error-summary");
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
