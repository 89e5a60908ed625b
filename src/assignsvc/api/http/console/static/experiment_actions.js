// An experiment's lifecycle actions and its assignment downloads, each one call of the /v1 API.
import { api, seg, stream, text } from "./api.js";
import { confirmButton, errorBox, h } from "./dom.js";
import { hasField } from "./features.js";
import { checkbox, field, onSubmit } from "./form.js";

const STATUS = "EXPERIMENT_STATUS_";

function lifecycle(e, verb, label, body, done) {
  return async () => {
    const reply = await api("POST", `/v1/experiments/${seg(e.id)}:${verb}`, { body: { etag: e.etag, ...body } });
    done(`${label}: ${reply.experiment ? reply.experiment.status.replace(STATUS, "").toLowerCase() : "done"}`);
  };
}

function stopForm(e, run, releasable) {
  const select = releasable && field("Released arm (optional)", "released_arm_id", {
    tag: "select",
    options: [h("option", { value: "" }, "none"), (e.arms || []).map((arm) => h("option", { value: arm.id }, arm.id))],
  });
  const form = h("form", { class: "inline", id: "stop-form" }, select, h("button", { type: "submit" }, "Stop"));
  return onSubmit(form, async (data) => {
    const released = releasable && data.get("released_arm_id");
    await lifecycle(e, "stop", "Stopped", released ? { releasedArmId: released } : {}, run.done)();
  });
}

function rerandomizeForm(e, run) {
  const form = h(
    "form",
    { class: "inline", id: "rerandomize-form" },
    field("New seed (optional)", "seed", { type: "text" }),
    checkbox("Block previous participants", "block_previous_participants", false),
    h("button", { type: "submit" }, "Rerandomize"),
  );
  return onSubmit(form, async (data) => {
    const body = { blockPreviousParticipants: data.get("block_previous_participants") === "on" };
    if (data.get("seed")) body.seed = data.get("seed");
    await lifecycle(e, "rerandomize", "Rerandomized", body, run.done)();
  });
}

/** The buttons the experiment's status allows, with the API's answer shown in place. */
export async function actions(e, refresh) {
  const releasable = await hasField("assignsvc.v1.StopExperimentRequest", "releasedArmId");
  const status = String(e.status || "").replace(STATUS, "");
  const message = h("div", { role: "status", id: "action-result" });
  const run = async (action) => {
    message.replaceChildren();
    try {
      await action();
    } catch (error) {
      if (!error.signedOut) message.replaceChildren(errorBox(error));
      throw error;
    }
  };
  run.done = () => refresh();
  const button = (verb, label) =>
    h("button", { type: "button", id: `action-${verb}`, onclick: () => run(lifecycle(e, verb, label, {}, run.done)).catch(() => {}) }, label);
  const buttons = [];
  if (status === "DRAFT") buttons.push(button("start", "Start"));
  if (status === "RUNNING") buttons.push(button("pause", "Pause"));
  if (status === "PAUSED") buttons.push(button("resume", "Resume"));
  const remove = confirmButton("Delete", `Delete ${e.id} for good?`, () =>
    run(async () => {
      await api("DELETE", `/v1/experiments/${seg(e.id)}`, { query: { etag: e.etag } });
      location.hash = "#/experiments";
    }).catch(() => {}),
    { id: "action-delete" },
  );
  return h(
    "section",
    { class: "actions", "aria-label": "Actions" },
    h("div", { class: "buttons" }, buttons, remove),
    status === "RUNNING" || status === "PAUSED" ? stopForm(e, run, releasable) : null,
    status !== "DRAFT" ? rerandomizeForm(e, run) : null,
    message,
  );
}

function save(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** Download buttons: the export route as CSV (Accept: text/csv) or as one JSON document. */
export function downloads(e) {
  const path = `/v1/experiments/${seg(e.id)}/assignments`;
  const message = h("div", { role: "status" });
  const run = (action) => async () => {
    message.replaceChildren();
    try {
      await action();
      message.replaceChildren(h("p", {}, "Downloaded."));
    } catch (error) {
      if (!error.signedOut) message.replaceChildren(errorBox(error));
    }
  };
  const csv = run(async () => save(`${e.id}-assignments.csv`, "text/csv", await text(path, { accept: "text/csv" })));
  const json = run(async () => {
    const assignments = (await stream(path)).flatMap((page) => page.assignments || []);
    save(`${e.id}-assignments.json`, "application/json", JSON.stringify({ experimentId: e.id, assignments }, null, 2));
  });
  return h(
    "section",
    { "aria-label": "Download" },
    h("h2", {}, "Assignments"),
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", id: "download-csv", onclick: csv }, "Download CSV"),
      h("button", { type: "button", id: "download-json", onclick: json }, "Download JSON"),
    ),
    message,
  );
}
