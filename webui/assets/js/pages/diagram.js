// A read-only BPMN diagram with highlighted elements, shared by the version diff and the auditors' replay.
//
//   const diagram = await PepDiagram.show(container, xml);
//   diagram.mark({ Task_A: ["app-done"], Task_B: ["app-active"] });   // replaces every earlier mark
//   diagram.note("Task_B", "Due 3 Mar");                               // a small label beside an element
//
// Markers are CSS classes on the element's SVG group; app.scss styles the app-* ones.
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";

async function show(container, xml) {
  const viewer = new NavigatedViewer({ container });
  const { warnings } = await viewer.importXML(xml);
  const canvas = viewer.get("canvas");
  const overlays = viewer.get("overlays");
  const registry = viewer.get("elementRegistry");
  canvas.zoom("fit-viewport", "auto");
  let marked = [];

  return {
    viewer,
    warnings,
    has: (id) => Boolean(registry.get(id)),
    mark(markers) {
      for (const [id, cls] of marked) canvas.removeMarker(id, cls);
      marked = [];
      for (const [id, classes] of Object.entries(markers || {})) {
        if (!registry.get(id)) continue;
        for (const cls of classes) {
          canvas.addMarker(id, cls);
          marked.push([id, cls]);
        }
      }
    },
    note(id, text, cls = "app-diagram-note") {
      if (!registry.get(id)) return;
      const label = document.createElement("span");
      label.className = cls;
      label.textContent = text;
      overlays.add(id, "app-note", { position: { bottom: -4, left: 0 }, html: label });
    },
    clearNotes: () => overlays.remove({ type: "app-note" }),
    focus(id) {
      const element = registry.get(id);
      if (element) canvas.scrollToElement(element);
    },
  };
}

window.PepDiagram = { show };
