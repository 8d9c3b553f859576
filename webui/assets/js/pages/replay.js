// The auditors' replay of one PEP: the diagram of the version that ran, with the path taken up to the
// chosen event (app-done) and what then waited (app-active), beside the event and the PEP's data.
//
// Reads the frames and diagrams the page embeds (#replay-frames, shaped by webui/audit_schemas.py) and
// draws with the shared viewer (diagram.js, loaded first). Everything is built with textContent: the
// data is what people typed, never markup.

const PLAY_INTERVAL_MS = 1500;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function wrap(tag, child, className) {
  const node = element(tag, undefined, className);
  node.append(child);
  return node;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const MOMENT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
const UK = { day: "numeric", month: "long", year: "numeric", timeZone: "Europe/London" };
const ukDay = new Intl.DateTimeFormat("en-GB", UK);
const ukMoment = new Intl.DateTimeFormat("en-GB", { ...UK, hour: "numeric", minute: "2-digit" });

// Stored dates as people read them in the UK ("10 March 2026"); anything else as it is.
function plain(value) {
  if (typeof value === "boolean") return value ? "Yes" : "No";
  const text = String(value);
  if (DAY.test(text)) return ukDay.format(new Date(`${text}T12:00:00Z`));
  if (MOMENT.test(text) && !Number.isNaN(Date.parse(text))) return ukMoment.format(new Date(text));
  return text;
}

function label(key) {
  const words = String(key).replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// Process data as nested description lists: objects as lists of their keys, arrays as numbered items.
function dataView(value) {
  if (Array.isArray(value)) {
    if (!value.length) return element("span", "(none)");
    const list = element("ol", undefined, "govuk-list govuk-list--number");
    for (const item of value) list.append(wrap("li", dataView(item)));
    return list;
  }
  if (value && typeof value === "object") {
    const list = element("dl", undefined, "app-replay__pairs");
    for (const [key, item] of Object.entries(value)) {
      list.append(element("dt", label(key)));
      list.append(wrap("dd", dataView(item)));
    }
    return list;
  }
  if (value === null || value === undefined || value === "") return element("span", "(empty)");
  return element("span", plain(value));
}

function eventView(frame) {
  const box = element("div");
  box.append(element("p", frame.when, "govuk-body govuk-!-font-weight-bold"));
  box.append(element("p", frame.who, "govuk-body"));
  box.append(element("p", frame.what, "govuk-body app-replay__what"));
  const checks = { match: ["Re-executed: same state", "govuk-tag--green"],
                   mismatch: ["Re-executed: different state", "govuk-tag--red"],
                   unchecked: ["Changes no process state", "govuk-tag--grey"] };
  const [text, colour] = checks[frame.check] || checks.unchecked;
  box.append(wrap("p", element("strong", text, `govuk-tag ${colour}`)));
  for (const callout of frame.callouts) {
    box.append(wrap("p", element("strong", callout, "govuk-tag govuk-tag--purple")));
  }
  if (frame.changes.length) {
    box.append(element("h3", "What changed", "govuk-heading-s"));
    const list = element("ul", undefined, "govuk-list govuk-body-s app-replay__changes");
    for (const change of frame.changes) list.append(element("li", `${change.field}: ${change.before} → ${change.after}`));
    box.append(list);
  }
  return box;
}

// The path taken: completed elements and the sequence flows between two of them; then what waits.
function markers(frame, registry) {
  const marks = {};
  const done = new Set(frame.completed);
  for (const id of done) marks[id] = ["app-done"];
  for (const flow of registry.filter((e) => e.type === "bpmn:SequenceFlow")) {
    if (done.has(flow.source.id) && done.has(flow.target.id)) marks[flow.id] = ["app-done"];
  }
  for (const id of frame.active) marks[id] = [...(marks[id] || []), "app-active"];
  return marks;
}

function start() {
  const source = document.getElementById("replay-frames");
  if (!source || !window.PepDiagram) return;
  const { frames, diagrams } = JSON.parse(source.textContent);
  const versions = Object.fromEntries(diagrams.map((d) => [d.definition_id, d]));
  const $ = (id) => document.getElementById(id);
  const [root, canvas, slider, choose, back, forward, play] =
    ["replay", "replay-diagram", "replay-slider", "replay-choose", "replay-back", "replay-forward", "replay-play"].map($);
  if (!frames.length) return;

  frames.forEach((frame, i) => {
    const option = element("option", `#${frame.seq} ${frame.when}: ${frame.what}`);
    option.value = String(i);
    choose.append(option);
  });
  slider.max = String(frames.length - 1);
  $("replay-count").textContent = String(frames.length);
  root.hidden = false;

  let index = 0;
  let shown = null;
  let diagram = null;
  let playing = null;
  let drawing = Promise.resolve();

  async function draw(frame) {
    const version = frame.definition_id && versions[frame.definition_id];
    if (version && frame.definition_id !== shown) {
      canvas.replaceChildren();
      diagram = await window.PepDiagram.show(canvas, version.xml);
      shown = frame.definition_id;
      $("replay-version").textContent = `${version.name}, version ${version.version}`;
    }
    if (diagram) {
      diagram.mark(markers(frame, diagram.viewer.get("elementRegistry")));
      if (frame.active.length) diagram.focus(frame.active[0]); // scrolls only when it is out of view
    }
    canvas.dataset.shownSeq = String(frame.seq);
  }

  function go(i) {
    index = Math.max(0, Math.min(frames.length - 1, i));
    const frame = frames[index];
    slider.value = String(index);
    choose.value = String(index);
    $("replay-position").textContent = String(index + 1);
    back.disabled = index === 0;
    forward.disabled = index === frames.length - 1;
    $("replay-event").replaceChildren(eventView(frame));
    $("replay-data").replaceChildren(dataView(frame.data));
    drawing = drawing.then(() => draw(frame)).catch((error) => {
      // e.g. a diagram saved without layout (no BPMN DI): the event and the data still show
      $("replay-version").textContent = `The diagram of this version cannot be drawn (${error.message}).`;
    });
    if (index === frames.length - 1) stop();
  }

  function stop() {
    if (playing) clearInterval(playing);
    playing = null;
    play.textContent = "Play";
    play.setAttribute("aria-pressed", "false");
  }

  const zooms = { in: (level) => level * 1.25, out: (level) => level / 1.25 };
  for (const button of root.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => {
      if (!diagram) return;
      const view = diagram.viewer.get("canvas");
      const how = zooms[button.dataset.zoom];
      view.zoom(how ? how(view.zoom()) : "fit-viewport", how ? undefined : "auto");
    });
  }
  back.addEventListener("click", () => go(index - 1));
  forward.addEventListener("click", () => go(index + 1));
  slider.addEventListener("input", () => go(Number(slider.value)));
  choose.addEventListener("change", () => go(Number(choose.value)));
  play.addEventListener("click", () => {
    if (playing) return stop();
    if (index === frames.length - 1) go(0);
    play.textContent = "Pause";
    play.setAttribute("aria-pressed", "true");
    playing = setInterval(() => go(index + 1), PLAY_INTERVAL_MS);
  });
  go(0);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
