// Creating an experiment, and changing an experiment's weights and coverage.
import { api, seg } from "./api.js";
import { h } from "./dom.js";
import { field, onSubmit } from "./form.js";

/** An arm value as typed: JSON when it parses (number, object, ...), else the text itself. */
function parseValue(text) {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function armRow(i, arm = {}) {
  const at = `experiment.arms[${i}]`;
  const remove = h("button", { type: "button", class: "link", "aria-label": `Remove arm ${i + 1}` }, "Remove");
  const row = h(
    "div",
    { class: "arm-row", "data-field": at },
    field("Arm id", `${at}.id`, { required: true, value: arm.id || "" }),
    field("Name", `${at}.name`, { value: arm.name || "" }),
    field("Weight", `${at}.weight`, { type: "number", step: "any", min: "0", max: "1", required: true, value: arm.weight ?? "" }),
    field("Value (JSON or text)", `${at}.value`, { value: arm.value === undefined ? "" : JSON.stringify(arm.value) }),
    remove,
  );
  remove.addEventListener("click", () => row.remove());
  return row;
}

function renumber(fieldset) {
  fieldset.querySelectorAll(".arm-row").forEach((row, i) => {
    const at = `experiment.arms[${i}]`;
    row.dataset.field = at;
    for (const input of row.querySelectorAll("[data-field]")) {
      const leaf = input.dataset.field.split(".").pop();
      input.dataset.field = `${at}.${leaf}`;
      input.name = `${at}.${leaf}`;
    }
  });
}

function readArms(form, data) {
  return [...form.querySelectorAll(".arm-row")].map((row, i) => {
    const at = `experiment.arms[${i}]`;
    const arm = { id: data.get(`${at}.id`), weight: Number(data.get(`${at}.weight`)) };
    if (data.get(`${at}.name`)) arm.name = data.get(`${at}.name`);
    const value = parseValue(String(data.get(`${at}.value`) || ""));
    if (value !== undefined) arm.value = value;
    return arm;
  });
}

function toTimestamp(local) {
  return local ? new Date(local).toISOString() : undefined;
}

export function createPage() {
  const arms = h("fieldset", { "data-field": "experiment.arms", class: "arms" }, h("legend", {}, "Arms (weights sum to 1)"), armRow(0, { id: "control", weight: 0.5 }), armRow(1, { id: "treatment", weight: 0.5 }));
  const add = h("button", { type: "button", id: "add-arm" }, "Add arm");
  add.addEventListener("click", () => {
    arms.append(armRow(arms.querySelectorAll(".arm-row").length));
    renumber(arms);
  });
  const form = h(
    "form",
    { id: "create-form", novalidate: true },
    field("Id", "experiment.id", { required: true, autocomplete: "off" }, "letters, digits, - and _; never reused"),
    field("Name", "experiment.name"),
    field("Type", "experiment.type", {
      tag: "select",
      options: [h("option", { value: "EXPERIMENT_TYPE_ONLINE" }, "online"), h("option", { value: "EXPERIMENT_TYPE_PREASSIGNED" }, "preassigned")],
    }),
    arms,
    add,
    field("Coverage", "experiment.coverage", { type: "number", step: "any", min: "0", max: "1", value: "1" }),
    field("Hash attribute", "experiment.hash_attribute", {}, "empty: the participant id"),
    field("Targeting condition (GrowthBook JSON)", "experiment.condition", { tag: "textarea", rows: 3 }),
    field("Start time", "experiment.start_time", { type: "datetime-local" }),
    field("End time", "experiment.end_time", { type: "datetime-local" }),
    h("button", { type: "submit" }, "Create"),
  );
  onSubmit(form, async (data) => {
    renumber(arms);
    const experiment = { id: data.get("experiment.id"), type: data.get("experiment.type"), arms: readArms(form, data) };
    for (const [name, key] of [["name", "name"], ["hash_attribute", "hashAttribute"], ["condition", "condition"]]) {
      if (data.get(`experiment.${name}`)) experiment[key] = data.get(`experiment.${name}`);
    }
    if (data.get("experiment.coverage") !== "") experiment.coverage = Number(data.get("experiment.coverage"));
    experiment.startTime = toTimestamp(data.get("experiment.start_time"));
    experiment.endTime = toTimestamp(data.get("experiment.end_time"));
    const reply = await api("POST", "/v1/experiments", { body: experiment });
    location.hash = `#/experiments/${seg(reply.experiment.id)}`;
  });
  return h("div", {}, h("h1", { tabindex: "-1" }, "New experiment"), form);
}

/** New weights and coverage: the arms' ids, names and values are sent unchanged. */
export function reweightForm(e, refresh) {
  const inputs = (e.arms || []).map((arm, i) =>
    field(`Weight of ${arm.id}`, `experiment.arms[${i}].weight`, { type: "number", step: "any", min: "0", max: "1", value: arm.weight ?? 0 }),
  );
  const form = h(
    "form",
    { id: "reweight-form", novalidate: true },
    h("h3", {}, "Change weights and coverage"),
    h("p", { class: "muted" }, "Participants already stored keep their arm; new weights and coverage apply to new participants only."),
    h("fieldset", { "data-field": "experiment.arms", class: "inline" }, h("legend", {}, "Weights"), inputs),
    field("Coverage", "experiment.coverage", { type: "number", step: "any", min: "0", max: "1", value: e.coverage ?? 1 }),
    h("button", { type: "submit" }, "Save weights"),
  );
  return onSubmit(form, async (data) => {
    const arms = (e.arms || []).map((arm, i) => ({ ...arm, weight: Number(data.get(`experiment.arms[${i}].weight`)) }));
    const body = { arms, coverage: Number(data.get("experiment.coverage")), etag: e.etag };
    await api("PATCH", `/v1/experiments/${seg(e.id)}`, { body, query: { updateMask: "arms,coverage" } });
    refresh();
  });
}
