// Read and change the spiffworkflow extension elements of a BPMN element through bpmn-js's modeling
// commands, so that every change can be undone and the diagram knows it has unsaved changes.
//
//   const ext = extensions(modeler);
//   ext.property(task.businessObject, "formJsonSchemaFilename")          // "qa.schema.json" or ""
//   ext.setProperty(task, task.businessObject, "dueDate", "pep_due")      // "" removes it
//   ext.setText(event, messageDefinition, "spiffworkflow:MessageVariable", "rescheduled")

const PROPERTIES = "spiffworkflow:Properties";

export function extensions(modeler) {
  const modeling = modeler.get("modeling");
  const bpmnFactory = modeler.get("bpmnFactory");

  const values = (owner) => owner.extensionElements?.values || [];
  const find = (owner, type) => values(owner).find((value) => value.$type === type);
  const update = (element, target, properties) => modeling.updateModdleProperties(element, target, properties);

  function create(type, attributes, parent) {
    const created = bpmnFactory.create(type, attributes);
    created.$parent = parent;
    return created;
  }

  function add(element, owner, value) {
    let container = owner.extensionElements;
    if (!container) {
      container = create("bpmn:ExtensionElements", { values: [] }, owner);
      update(element, owner, { extensionElements: container });
    }
    value.$parent = container;
    update(element, container, { values: [...container.values, value] });
  }

  function remove(element, owner, value) {
    const rest = values(owner).filter((other) => other !== value);
    if (rest.length) update(element, owner.extensionElements, { values: rest });
    else update(element, owner, { extensionElements: undefined });
  }

  return {
    property(owner, name) {
      return (find(owner, PROPERTIES)?.properties || []).find((p) => p.name === name)?.value ?? "";
    },

    text(owner, type) {
      return find(owner, type)?.value ?? "";
    },

    setProperty(element, owner, name, value) {
      const container = find(owner, PROPERTIES);
      const all = container?.properties || [];
      const existing = all.find((p) => p.name === name);
      if (!value) {
        if (!existing) return;
        const rest = all.filter((p) => p !== existing);
        if (rest.length) update(element, container, { properties: rest });
        else remove(element, owner, container);
      } else if (existing) {
        update(element, existing, { value });
      } else if (container) {
        update(element, container, { properties: [...all, create("spiffworkflow:Property", { name, value }, container)] });
      } else {
        const created = create(PROPERTIES, { properties: [] });
        created.properties.push(create("spiffworkflow:Property", { name, value }, created));
        add(element, owner, created);
      }
    },

    setText(element, owner, type, value) {
      const existing = find(owner, type);
      if (!value) {
        if (existing) remove(element, owner, existing);
      } else if (existing) {
        update(element, existing, { value });
      } else {
        add(element, owner, create(type, { value }));
      }
    },
  };
}
