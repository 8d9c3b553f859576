// The properties panel: GOV.UK form controls beside the canvas for what our diagrams use, so a
// process owner never edits XML. It shows the selected element's properties and writes each change
// through bpmn-js's modeling commands when a field is committed (on change, not on every key).
//
// The vocabulary (roles, forms, messages, calendar functions) comes from /processes/vocabulary.json.
import { is } from "bpmn-js/lib/util/ModelUtil";

import { extensions } from "./extensions.js";

const TIMER_KINDS = [
  ["timeDate", "At a date and time (timeDate)"],
  ["timeDuration", "After a duration (timeDuration)"],
  ["timeCycle", "Repeating (timeCycle)"],
];
const NOTIFY_KINDS = ["reminder", "overdue", "escalation", "notice"];
const TIMER_EXAMPLE = "end_of_day(working_days(5, meeting_date))";
const NEW_MESSAGE = "\u0000new";

const norm = (name) => (name || "").replace(/-/g, " ").split(/\s+/).filter(Boolean).join(" ").toLowerCase();

export function createPanel(container, modeler, vocabulary) {
  const modeling = modeler.get("modeling");
  const bpmnFactory = modeler.get("bpmnFactory");
  const registry = modeler.get("elementRegistry");
  const canvas = modeler.get("canvas");
  const moddle = modeler.get("moddle");
  const ext = extensions(modeler);
  const roles = new Map();
  for (const role of vocabulary.roles) {
    for (const name of [role.key, role.label, ...role.aliases]) roles.set(norm(name), role);
  }
  let current = null;
  let committing = false; // a change made from this panel: the panel already shows it

  modeler.get("eventBus").on("selection.changed", ({ newSelection }) => {
    current = newSelection.length === 1 ? newSelection[0] : null;
    render();
  });
  modeler.get("eventBus").on("elements.changed", ({ elements }) => {
    // Re-render for changes made on the canvas (or undone), never under the owner's cursor.
    if (committing || !current || container.contains(document.activeElement)) return;
    if (elements.some((e) => e.id === current.id)) render();
  });

  function render() {
    container.replaceChildren();
    const element = current && registry.get(current.id);
    if (!element || element.type === "label") {
      container.append(
        h("h2", "govuk-heading-m", "Properties"),
        h("p", "govuk-body", "Select an element of the diagram to see and change its properties."),
      );
      return;
    }
    const bo = element.businessObject;
    container.append(h("h2", "govuk-heading-m", kindOf(bo)), h("p", "govuk-body-s app-modeller__id", `id: ${bo.id}`));
    if (is(bo, "bpmn:Lane")) return roleFields(element, bo);
    if (!is(bo, "bpmn:Process") && !is(bo, "bpmn:Collaboration")) nameField(element, bo);
    if (is(bo, "bpmn:FlowNode") && !is(bo, "bpmn:BoundaryEvent")) laneField(element, bo);
    if (is(bo, "bpmn:UserTask")) userTaskFields(element, bo);
    if (is(bo, "bpmn:ScriptTask")) {
      area("Script", bo.script || "", (value) => modeling.updateProperties(element, { script: value }), {
        hint: "Python, run in the restricted environment. A name it assigns becomes process data.", rows: 6, code: true,
      });
    }
    if (is(bo, "bpmn:Task")) {
      area("Post-script (optional)", ext.text(bo, "spiffworkflow:PostScript"),
        (value) => ext.setText(element, bo, "spiffworkflow:PostScript", value),
        { hint: "Runs after the task is completed.", rows: 3, code: true });
    }
    for (const definition of bo.eventDefinitions || []) {
      if (is(definition, "bpmn:TimerEventDefinition")) timerFields(element, definition);
      if (is(definition, "bpmn:MessageEventDefinition")) messageFields(element, bo, definition);
    }
    if (is(bo, "bpmn:SequenceFlow")) conditionField(element, bo);
    if (is(bo, "bpmn:FlowNode")) notifyFields(element, bo);
  }

  // ---- the fields of each kind of element ----

  function nameField(element, bo) {
    input("Name", bo.name || "", (value) => modeling.updateLabel(element, value));
  }

  function roleFields(element, bo) {
    const role = roles.get(norm(bo.name));
    const options = [["", "Choose a role"], ...vocabulary.roles.map((r) => [r.label, r.label])];
    if (bo.name && bo.name !== role?.label) {
      options.splice(1, 0, [bo.name, role ? `${bo.name} (another name for ${role.label})` : `${bo.name} (not a known role)`]);
    }
    select("Role", options, bo.name || "", (value) => value && modeling.updateLabel(element, value),
      { hint: "Tasks in this lane go to the person holding this role in the child’s case team." });
  }

  function laneField(element, bo) {
    // A step inside a sub-process is done by the role of the sub-process's lane: it has no lane of its own.
    if (!is(element.parent, "bpmn:Participant")) return;
    const lanes = registry.filter((e) => is(e, "bpmn:Lane") && poolOf(e) === element.parent
      && !(e.businessObject.childLaneSet?.lanes || []).length);
    if (!lanes.length) return;
    const mine = lanes.find((lane) => (lane.businessObject.flowNodeRef || []).includes(bo));
    const options = lanes.map((lane) => [lane.id, lane.businessObject.name || lane.id]);
    if (!mine) options.unshift(["", "Not in a lane"]);
    select("Lane", options, mine ? mine.id : "", (laneId) => {
      const lane = registry.get(laneId);
      if (!lane) return;
      const dy = lane.y + lane.height / 2 - (element.y + element.height / 2);
      const left = lane.x + 10 - element.x;
      const right = lane.x + lane.width - 10 - (element.x + element.width);
      modeling.moveElements([element], { x: Math.max(left, Math.min(0, right)), y: dy });
    }, { hint: "Who does this step: moves it into that lane." });
  }

  function userTaskFields(element, bo) {
    const form = ext.property(bo, "formJsonSchemaFilename");
    const options = [["", "Choose a form"], ...vocabulary.forms.map((name) => [name, name])];
    if (form && !vocabulary.forms.includes(form)) options.splice(1, 0, [form, `${form} (not in forms/)`]);
    select("Form", options, form, (value) => ext.setProperty(element, bo, "formJsonSchemaFilename", value),
      { hint: "The form the person fills in, from forms/." });
    area("Instructions (optional)", ext.text(bo, "spiffworkflow:InstructionsForEndUser"),
      (value) => ext.setText(element, bo, "spiffworkflow:InstructionsForEndUser", value),
      { hint: "Shown above the form. A Jinja template over the process data, e.g. {{ child.name }}.", rows: 4 });
    input("Due date (optional)", ext.property(bo, "dueDate"), (value) => ext.setProperty(element, bo, "dueDate", value),
      { hint: `An expression for the deadline shown in inboxes, e.g. ${TIMER_EXAMPLE}`, code: true });
    area("Validate (optional)", ext.property(bo, "validate"), (value) => ext.setProperty(element, bo, "validate", value),
      { hint: "An expression giving {field: message} for answers to refuse, {} when they are acceptable.", rows: 3, code: true });
  }

  function timerFields(element, definition) {
    let kind = TIMER_KINDS.map(([k]) => k).find((k) => definition[k]) || "timeDate";
    const expression = input("Timer expression", definition[kind]?.body || "", (value) => write(kind, value.trim()), {
      hint: `An expression giving a date and time, e.g. ${TIMER_EXAMPLE}`, code: true,
    });
    const write = (newKind, body) => {
      const properties = { timeDate: undefined, timeDuration: undefined, timeCycle: undefined };
      properties[newKind] = body ? bpmnFactory.create("bpmn:FormalExpression", { body }) : undefined;
      modeling.updateModdleProperties(element, definition, properties);
      kind = newKind;
    };
    const kindChooser = select("Kind of timer", TIMER_KINDS, kind, (value) => write(value, expression.querySelector("input").value.trim()));
    expression.before(kindChooser);
    const details = h("details", "govuk-details");
    const list = h("dl", "app-modeller__functions");
    for (const fn of vocabulary.functions) list.append(h("dt", "", fn.signature), h("dd", "", fn.help));
    details.append(h("summary", "govuk-details__summary", "Calendar functions"), h("div", "govuk-details__text"));
    details.lastChild.append(list);
    container.append(details);
  }

  function messageFields(element, bo, definition) {
    const definitions = canvas.getRootElement().businessObject.$parent;
    const inDiagram = (definitions.rootElements || []).filter((e) => is(e, "bpmn:Message"));
    const names = [...new Set([...inDiagram.map((m) => m.name || m.id), ...vocabulary.messages])].sort();
    const currentName = definition.messageRef ? definition.messageRef.name || definition.messageRef.id : "";
    const options = [["", "Choose a message"], ...names.map((n) => [n, n]), [NEW_MESSAGE, "A new message…"]];
    const chooser = select("Message", options, currentName, (value) => {
      newName.hidden = value !== NEW_MESSAGE;
      if (value && value !== NEW_MESSAGE) useMessage(value);
    });
    const newName = input("Name of the new message", "", (value) => value.trim() && useMessage(value.trim()),
      { hint: "Senders use this name, e.g. child_changes_school.", code: true });
    newName.hidden = true;
    chooser.after(newName);

    function useMessage(name) {
      let message = (definitions.rootElements || []).find((e) => is(e, "bpmn:Message") && (e.name || e.id) === name);
      if (!message) {
        message = bpmnFactory.create("bpmn:Message", { id: freeId(name), name });
        message.$parent = definitions;
        moddle.ids.claim(message.id, message);
        modeling.updateModdleProperties(element, definitions, { rootElements: [...definitions.rootElements, message] });
      }
      modeling.updateModdleProperties(element, definition, { messageRef: message });
    }

    const throws = is(bo, "bpmn:IntermediateThrowEvent") || is(bo, "bpmn:EndEvent");
    if (throws) {
      area("Payload (optional)", ext.text(definition, "spiffworkflow:MessagePayload"),
        (value) => ext.setText(element, definition, "spiffworkflow:MessagePayload", value),
        { hint: "An expression giving the data sent with the message, e.g. {\"meeting_date\": meeting_date}.", rows: 3, code: true });
    } else {
      input("Store the message's data as (optional)", ext.text(definition, "spiffworkflow:MessageVariable"),
        (value) => ext.setText(element, definition, "spiffworkflow:MessageVariable", value.trim()),
        { hint: "The process data name the message's data arrives under.", code: true });
    }
  }

  function conditionField(element, bo) {
    if (bo.sourceRef?.default === bo) {
      container.append(h("p", "govuk-body", "This is the default path: it is taken when no other condition holds."));
      return;
    }
    input("Condition (optional)", bo.conditionExpression?.body || "", (value) => modeling.updateProperties(element, {
      conditionExpression: value.trim() ? bpmnFactory.create("bpmn:FormalExpression", { body: value.trim() }) : undefined,
    }), { hint: "An expression over the process data, e.g. rating == \"Red\".", code: true });
  }

  function notifyFields(element, bo) {
    const notify = ext.property(bo, "notify");
    const details = h("details", "govuk-details");
    details.open = Boolean(notify);
    details.append(h("summary", "govuk-details__summary", "Notification"));
    const body = h("div", "govuk-details__text");
    details.append(body);
    container.append(details);
    const set = (name) => (value) => ext.setProperty(element, bo, name, value.trim());
    input("Notify (roles)", notify, set("notify"), { hint: "Role names separated by commas, e.g. Designated Teacher, Social Worker.", into: body });
    input("Subject", ext.property(bo, "notifySubject"), set("notifySubject"), { hint: "A Jinja template.", into: body });
    area("Message (optional)", ext.property(bo, "notifyBody"), set("notifyBody"), { rows: 3, into: body });
    const kind = ext.property(bo, "notifyKind");
    const kinds = [["", "None"], ...NOTIFY_KINDS.map((k) => [k, k])];
    if (kind && !NOTIFY_KINDS.includes(kind)) kinds.push([kind, kind]);
    select("Kind (optional)", kinds, kind, set("notifyKind"), { into: body });
  }

  // ---- GOV.UK form controls ----

  let counter = 0;

  function onCommit(control, commit) {
    control.addEventListener("change", () => {
      committing = true;
      try {
        commit(control.value);
      } finally {
        committing = false;
      }
    });
  }

  function group(label, control, { hint, into } = {}) {
    const id = `prop-${++counter}`;
    control.id = id;
    const wrapper = h("div", "govuk-form-group");
    const labelElement = h("label", "govuk-label govuk-label--s", label);
    labelElement.htmlFor = id;
    wrapper.append(labelElement);
    if (hint) {
      const hintElement = h("div", "govuk-hint", hint);
      hintElement.id = `${id}-hint`;
      control.setAttribute("aria-describedby", hintElement.id);
      wrapper.append(hintElement);
    }
    wrapper.append(control);
    (into || container).append(wrapper);
    return wrapper;
  }

  function input(label, value, commit, options = {}) {
    const control = h("input", `govuk-input${options.code ? " app-code" : ""}`);
    control.type = "text";
    control.value = value;
    control.spellcheck = !options.code;
    onCommit(control, commit);
    return group(label, control, options);
  }

  function area(label, value, commit, options = {}) {
    const control = h("textarea", `govuk-textarea${options.code ? " app-code" : ""}`);
    control.rows = options.rows || 3;
    control.value = value;
    control.spellcheck = !options.code;
    onCommit(control, commit);
    return group(label, control, options);
  }

  function select(label, options, value, commit, extra = {}) {
    const control = h("select", "govuk-select");
    for (const [optionValue, text] of options) {
      const option = h("option", "", text);
      option.value = optionValue;
      control.append(option);
    }
    control.value = value;
    onCommit(control, commit);
    return group(label, control, extra);
  }

  function freeId(name) {
    const base = name.replace(/[^A-Za-z0-9_.-]/g, "_").replace(/^([^A-Za-z_])/, "message_$1");
    let id = base;
    for (let n = 2; moddle.ids.assigned(id); n++) id = `${base}_${n}`;
    return id;
  }

  render();
  return { render };
}

function poolOf(shape) {
  let found = shape.parent;
  while (found && !is(found, "bpmn:Participant")) found = found.parent;
  return found;
}

function kindOf(bo) {
  const type = bo.$type.replace(/^bpmn:/, "");
  const words = type.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function h(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}
