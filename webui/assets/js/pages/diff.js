// A version of a process drawn read-only (#version-diagram), or two versions side by side with what
// changed marked (#diff-a, #diff-b): removed and changed elements on the older, added and changed on
// the newer. The ids come from the page (#diff-markers, shaped by webui/versions.py DiffMarkers); the
// drawing is the shared viewer (diagram.js, loaded first).

async function fetchXml(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`could not load ${url}: ${response.status}`);
  return response.text();
}

function marks(ids, cls, into) {
  for (const id of ids) (into[id] = into[id] || []).push(cls);
  return into;
}

async function showVersion(container) {
  await window.PepDiagram.show(container, await fetchXml(container.dataset.xmlUrl));
}

async function showDiff(markers) {
  document.getElementById("diff").hidden = false;
  const [a, b] = await Promise.all([
    window.PepDiagram.show(document.getElementById("diff-a"), await fetchXml(markers.a_url)),
    window.PepDiagram.show(document.getElementById("diff-b"), await fetchXml(markers.b_url)),
  ]);
  a.mark(marks(markers.changed, "app-changed", marks(markers.removed, "app-removed", {})));
  b.mark(marks(markers.changed, "app-changed", marks(markers.added, "app-added", {})));
}

const single = document.getElementById("version-diagram");
const payload = document.getElementById("diff-markers");
if (single) showVersion(single);
if (payload) showDiff(JSON.parse(payload.textContent));
