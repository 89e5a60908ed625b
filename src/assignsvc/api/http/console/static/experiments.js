// Experiments: the list with a filter, and one experiment's page.
import { all, api, seg } from "./api.js";
import { allocation, srmBadge } from "./chart.js";
import { enumName, errorBox, facts, h, percent, table, time } from "./dom.js";
import { actions, downloads } from "./experiment_actions.js";
import { reweightForm } from "./experiment_form.js";

const STATUS = "EXPERIMENT_STATUS_";
const STATUSES = ["draft", "running", "paused", "stopped"];

export function statusBadge(experiment) {
  const status = enumName(experiment.status, STATUS);
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

async function statsOf(id) {
  try {
    return await api("GET", `/v1/experiments/${seg(id)}/stats`);
  } catch (error) {
    if (error.signedOut) throw error;
    return null;
  }
}

/** The current phase, when the server keeps phases (proto3 JSON leaves a 0 out). */
function phaseOf(experiment) {
  const kept = experiment.phase !== undefined || (experiment.phases && experiment.phases.length);
  return kept ? String(experiment.phase || 0) : "";
}

function armsText(experiment) {
  return (experiment.arms || []).map((arm) => `${arm.id} ${percent(arm.weight)}`).join(", ");
}

function listRow(experiment, stats) {
  const link = h("a", { href: `#/experiments/${seg(experiment.id)}` }, experiment.name || experiment.id);
  const row = h(
    "tr",
    { "data-experiment-id": experiment.id },
    h("td", {}, link, experiment.name && experiment.name !== experiment.id ? h("div", { class: "muted" }, experiment.id) : null),
    h("td", {}, statusBadge(experiment)),
    h("td", {}, enumName(experiment.type, "EXPERIMENT_TYPE_")),
    h("td", {}, armsText(experiment)),
    h("td", { class: "n" }, percent(experiment.coverage ?? 1)),
    h("td", { class: "n" }, phaseOf(experiment) || "—"),
    h("td", { class: "n", "data-assignments": "" }, stats ? String(Number(stats.totalAssignments || 0)) : "—"),
    h("td", {}, stats ? srmBadge(stats) : "—"),
  );
  row.dataset.search = `${experiment.id} ${experiment.name || ""} ${armsText(experiment)}`.toLowerCase();
  row.dataset.statusName = enumName(experiment.status, STATUS);
  return row;
}

export async function listPage() {
  const experiments = await all("/v1/experiments", "experiments");
  const stats = await Promise.all(experiments.map((e) => statsOf(e.id)));
  const rows = experiments.map((e, i) => listRow(e, stats[i]));
  const text = h("input", { id: "filter", type: "search", placeholder: "id, name or arm" });
  const status = h(
    "select",
    { id: "filter-status" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((name) => h("option", { value: name }, name)),
  );
  const count = h("p", { class: "muted", role: "status" });
  const apply = () => {
    const needle = text.value.trim().toLowerCase();
    let shown = 0;
    for (const row of rows) {
      row.hidden = !(row.dataset.search.includes(needle) && (!status.value || row.dataset.statusName === status.value));
      shown += row.hidden ? 0 : 1;
    }
    count.textContent = `${shown} of ${rows.length} experiments`;
  };
  text.addEventListener("input", apply);
  status.addEventListener("change", apply);
  apply();
  return h(
    "div",
    {},
    h("div", { class: "title" }, h("h1", { tabindex: "-1" }, "Experiments"), h("a", { class: "button", href: "#/experiments/new" }, "New experiment")),
    h(
      "div",
      { class: "filters" },
      h("label", { for: "filter" }, "Filter"),
      text,
      h("label", { for: "filter-status" }, "Status"),
      status,
    ),
    count,
    rows.length
      ? table(["Experiment", "Status", "Type", "Arms (weight)", "Coverage", "Phase", "Assignments", "SRM"], rows, { id: "experiments" })
      : h("p", {}, "No experiments yet."),
  );
}

function valueText(value) {
  return value === undefined ? "—" : JSON.stringify(value);
}

function configuration(e) {
  const ns = e.namespace && e.namespace.id ? `${e.namespace.id} [${e.namespace.rangeStart || 0}, ${e.namespace.rangeEnd || 0})` : "";
  return facts([
    ["Id", e.id],
    ["Type", enumName(e.type, "EXPERIMENT_TYPE_")],
    ["Coverage", percent(e.coverage ?? 1)],
    ["Current phase", phaseOf(e)],
    ["Released arm", e.releasedArmId || ""],
    ["Bucket version", String(e.bucketVersion || 0)],
    ["Min bucket version", String(e.minBucketVersion || 0)],
    ["Seed", e.seed],
    ["Hash algorithm", enumName(e.hashAlgorithm, "HASH_ALGORITHM_")],
    ["Hash attribute", e.hashAttribute || "(participant id)"],
    ["Fallback attribute", e.fallbackAttribute || ""],
    ["Namespace", ns],
    ["Redis failure policy", enumName(e.redisFailurePolicy, "REDIS_FAILURE_POLICY_")],
    ["Schedule", `${e.startTime ? time(e.startTime) : "no start time"} → ${e.endTime ? time(e.endTime) : "no end time"}`],
    ["Created", time(e.createTime)],
    ["Updated", time(e.updateTime)],
    ["Etag", e.etag],
  ]);
}

function armsTable(e) {
  return table(
    ["Arm", "Name", "Weight", "Value"],
    (e.arms || []).map((arm) =>
      h("tr", { "data-arm": arm.id }, h("td", {}, arm.id), h("td", {}, arm.name || ""), h("td", { class: "n" }, percent(arm.weight)), h("td", {}, h("code", {}, valueText(arm.value)))),
    ),
    { id: "arms" },
  );
}

function phasesTable(e) {
  if (!e.phases || !e.phases.length) return null;
  return h(
    "section",
    {},
    h("h2", {}, "Phases"),
    table(
      ["Phase", "Since", "Weights", "Coverage"],
      e.phases.map((p) =>
        h(
          "tr",
          {},
          h("td", {}, String(p.phase || 0)),
          h("td", {}, time(p.startTime)),
          h("td", {}, (p.weights || []).map((w) => (typeof w === "object" ? `${w.armId || w.id}: ${percent(w.weight)}` : percent(w))).join(", ")),
          h("td", {}, percent(p.coverage ?? 1)),
        ),
      ),
    ),
  );
}

function targeting(e) {
  const forced = Object.entries(e.forcedArms || {});
  return [
    h("h3", {}, "Targeting condition"),
    e.condition ? h("pre", { class: "condition" }, e.condition) : h("p", {}, "Everyone (no condition)."),
    h("h3", {}, "Forced arms"),
    forced.length
      ? table(["Participant", "Arm"], forced.map(([p, arm]) => h("tr", {}, h("td", {}, p), h("td", {}, arm))), { id: "forced" })
      : h("p", {}, "None."),
  ];
}

/** Stored assignments per arm, refreshed every 2 s while the page is shown. */
async function allocationSection(e, onLeave) {
  const section = h("section", { id: "allocation", "aria-live": "polite" });
  const versions = [];
  for (let v = e.bucketVersion || 0; v >= 0; v -= 1) versions.push(v);
  const picker = h("select", { id: "bucket-version" }, versions.map((v) => h("option", { value: v }, `bucket version ${v}`)));
  const body = h("div", {});
  let shown = "";
  const load = async () => {
    try {
      const query = picker.value === String(e.bucketVersion || 0) ? undefined : { bucketVersion: picker.value };
      const stats = await api("GET", `/v1/experiments/${seg(e.id)}/stats`, { query });
      const seen = JSON.stringify([picker.value, stats]);
      if (seen !== shown) body.replaceChildren(...allocation(stats)); // redrawn only when it changed
      shown = seen;
    } catch (error) {
      shown = "";
      if (!error.signedOut) body.replaceChildren(errorBox(error));
    }
  };
  picker.addEventListener("change", load);
  await load();
  const timer = setInterval(load, 2000);
  onLeave(() => clearInterval(timer));
  section.append(
    h("div", { class: "title" }, h("h2", {}, "Allocation"), versions.length > 1 ? [h("label", { for: "bucket-version", class: "sr" }, "Bucket version"), picker] : null),
    body,
  );
  return section;
}

export async function detailPage(id, refresh, onLeave) {
  const { experiment: e } = await api("GET", `/v1/experiments/${seg(id)}`);
  return h(
    "div",
    { class: "experiment", "data-experiment-id": e.id },
    h("div", { class: "title" }, h("h1", { tabindex: "-1" }, e.name || e.id), statusBadge(e)),
    await actions(e, refresh),
    await allocationSection(e, onLeave),
    h("section", {}, h("h2", {}, "Arms"), armsTable(e), reweightForm(e, refresh)),
    phasesTable(e),
    h("section", {}, h("h2", {}, "Configuration"), configuration(e), targeting(e)),
    downloads(e),
  );
}
