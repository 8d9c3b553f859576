// The spiffworkflow extension namespace as bpmn-js's moddle reads and writes it, so that forms,
// instructions, scripts, notifications and message data in <bpmn:extensionElements> can be edited
// and survive an import and export unchanged. It declares every element SpiffWorkflow's parser reads
// (SpiffWorkflow/spiff/parser): an element of this namespace left undeclared would be dropped.

// An element whose whole content is text, like <spiffworkflow:postScript>total = 1</spiffworkflow:postScript>.
const text = (name) => ({ name, superClass: ["Element"], properties: [{ name: "value", type: "String", isBody: true }] });

// An element holding <spiffworkflow:name value="…"> entries (properties, task metadata values).
const list = (name, item) => ({ name, superClass: ["Element"], properties: [{ name: item.charAt(0).toLowerCase() + item.slice(1) + "s", type: item, isMany: true }] });
const pair = (name) => ({
  name,
  superClass: ["Element"],
  properties: [
    { name: "name", type: "String", isAttr: true },
    { name: "value", type: "String", isAttr: true },
  ],
});

export default {
  name: "SpiffWorkflow",
  prefix: "spiffworkflow",
  uri: "http://spiffworkflow.org/bpmn/schema/1.0/core",
  xml: { tagAlias: "lowerCase" },
  associations: [],
  types: [
    { name: "Properties", superClass: ["Element"], properties: [{ name: "properties", type: "Property", isMany: true }] },
    pair("Property"),
    list("TaskMetadataValues", "TaskMetadataValue"),
    pair("TaskMetadataValue"),
    text("InstructionsForEndUser"),
    text("PreScript"),
    text("PostScript"),
    text("MessagePayload"),
    text("MessageVariable"),
    text("CalledDecisionId"),
    text("PayloadExpression"),
    text("VariableName"),
    text("AllowGuest"),
    text("GuestConfirmation"),
    text("SignalButtonLabel"),
    {
      name: "ProcessVariableCorrelation",
      superClass: ["Element"],
      properties: [
        { name: "propertyId", type: "String" },
        { name: "expression", type: "String" },
      ],
    },
    {
      name: "ServiceTaskOperator",
      superClass: ["Element"],
      properties: [
        { name: "id", type: "String", isAttr: true },
        { name: "resultVariable", type: "String", isAttr: true },
        { name: "parameters", type: "Parameters" },
      ],
    },
    { name: "Parameters", superClass: ["Element"], properties: [{ name: "parameters", type: "Parameter", isMany: true }] },
    {
      name: "Parameter",
      superClass: ["Element"],
      properties: [
        { name: "id", type: "String", isAttr: true },
        { name: "type", type: "String", isAttr: true },
        { name: "value", type: "String", isAttr: true },
      ],
    },
    { name: "UnitTests", superClass: ["Element"], properties: [{ name: "unitTests", type: "UnitTest", isMany: true }] },
    {
      name: "UnitTest",
      superClass: ["Element"],
      properties: [
        { name: "id", type: "String", isAttr: true },
        { name: "inputJson", type: "String" },
        { name: "expectedOutputJson", type: "String" },
      ],
    },
  ],
};
