// Webhooks: the list, a form to add one, and one webhook's page with its delivery log.
import { all, api, seg } from "./api.js";
import { confirmButton, enumName, errorBox, facts, h, secretPanel, table, time } from "./dom.js";
import { hasField } from "./features.js";
import { checkbox, field, onSubmit } from "./form.js";

const EVENTS = [
  "experiment.created",
  "experiment.updated",
  "experiment.status.updated",
  "experiment.deleted",
  "experiment.rerandomized",
  "experiment.warning",
  "webhook.test",
];
const FORMATS = ["assignsvc", "evidential", "eppo", "intelligems", "growthbook"];

function addForm(onCreated, formats) {
  const form = h(
    "form",
    { id: "webhook-form", novalidate: true },
    h("h2", {}, "Add a webhook"),
    field("URL", "webhook.url", { type: "url", required: true, placeholder: "https://example.com/hooks/assignsvc" }),
    field("Description", "webhook.description"),
    formats && field("Payload format", "webhook.format", {
      tag: "select",
      options: [h("option", { value: "" }, "the server's default"), FORMATS.map((f) => h("option", { value: f }, f))],
    }),
    h("fieldset", { "data-field": "webhook.events" }, h("legend", {}, "Events (none checked: every event)"), EVENTS.map((e) => checkbox(e, "events", false, { value: e }))),
    field("Token (sent as Webhook-Token)", "webhook.token", { type: "password", autocomplete: "off" }),
    checkbox("Sign the body too", "sign_body", false),
    h("button", { type: "submit" }, "Add webhook"),
  );
  return onSubmit(form, async (data) => {
    const webhook = { url: data.get("webhook.url"), events: data.getAll("events"), signBody: data.get("sign_body") === "on" };
    for (const name of ["description", "token", "format"]) if (data.get(`webhook.${name}`)) webhook[name] = data.get(`webhook.${name}`);
    const reply = await api("POST", "/v1/webhooks", { body: webhook });
    form.reset();
    onCreated(reply.webhook);
  });
}

function webhookRow(w) {
  return h(
    "tr",
    { "data-webhook-id": w.id },
    h("td", {}, h("a", { href: `#/webhooks/${seg(w.id)}` }, w.id)),
    h("td", { class: "url" }, w.url),
    h("td", {}, w.format || "—"),
    h("td", {}, (w.events || []).join(", ") || "every event"),
    h("td", {}, w.enabled ? "enabled" : `disabled${w.disabledReason ? `: ${w.disabledReason}` : ""}`),
    h("td", { class: "n" }, String(w.failedEvents || 0)),
    h("td", {}, w.description || ""),
  );
}

export async function listPage() {
  const list = h("div", {});
  const created = h("div", {});
  const load = async () => {
    const webhooks = await all("/v1/webhooks", "webhooks");
    list.replaceChildren(
      webhooks.length
        ? table(["Id", "URL", "Format", "Events", "State", "Failed events", "Description"], webhooks.map(webhookRow), { id: "webhooks" })
        : h("p", {}, "No webhooks yet."),
    );
  };
  await load();
  const formats = await hasField("assignsvc.v1.Webhook", "format");
  const form = addForm((webhook) => {
    created.replaceChildren(secretPanel(`Signing secret of ${webhook.id}`, webhook.secret || ""));
    load().catch((error) => error.signedOut || list.replaceChildren(errorBox(error)));
  }, formats);
  return h("div", {}, h("h1", { tabindex: "-1" }, "Webhooks"), created, list, form);
}

function duration(value) {
  return value ? `${Math.round(parseFloat(value) * 1000)} ms` : "—";
}

function attemptList(attempts) {
  return h(
    "details",
    {},
    h("summary", {}, String(attempts.length)),
    h(
      "ol",
      { class: "attempts" },
      attempts.map((a) => h("li", {}, `${time(a.time)}: ${a.responseStatus || "no answer"}, ${duration(a.latency)}${a.error ? `, ${a.error}` : ""}`)),
    ),
  );
}

function deliveryRow(d) {
  const attempts = d.attempts || [];
  const last = attempts[attempts.length - 1] || {};
  const state = enumName(d.state, "DELIVERY_STATE_");
  return h(
    "tr",
    { "data-delivery-id": d.id, "data-state": state },
    h("td", {}, time(d.createTime)),
    h("td", {}, d.eventType || ""),
    h("td", {}, h("span", { class: `badge delivery-${state}` }, state)),
    h("td", { class: "n" }, attempts.length > 1 ? attemptList(attempts) : String(d.attemptCount || 0)),
    h("td", { class: "n" }, last.responseStatus ? String(last.responseStatus) : "—"),
    h("td", { class: "n" }, duration(last.latency)),
    h("td", {}, d.nextAttemptTime ? time(d.nextAttemptTime) : "—"),
    h("td", {}, last.error || ""),
  );
}

export async function detailPage(id, refresh, onLeave) {
  const { webhook: w } = await api("GET", `/v1/webhooks/${seg(id)}`);
  const log = h("div", { id: "deliveries", "aria-live": "polite" });
  const message = h("div", { role: "status", id: "webhook-result" });
  let shown = "";
  const loadLog = async () => {
    const deliveries = (await api("GET", `/v1/webhooks/${seg(id)}/deliveries`, { query: { pageSize: "50" } })).deliveries || [];
    if (JSON.stringify(deliveries) === shown) return; // redrawn only when it changed
    shown = JSON.stringify(deliveries);
    log.replaceChildren(
      deliveries.length
        ? table(["Created", "Event", "State", "Attempts", "Status", "Latency", "Next retry", "Error"], deliveries.map(deliveryRow), { id: "delivery-log" })
        : h("p", {}, "No deliveries yet."),
    );
  };
  const act = (action) => async () => {
    message.replaceChildren();
    try {
      await action();
    } catch (error) {
      if (!error.signedOut) message.replaceChildren(errorBox(error));
    }
  };
  const test = act(async () => {
    const reply = await api("POST", `/v1/webhooks/${seg(id)}:sendTestEvent`, { body: {} });
    message.replaceChildren(h("p", {}, `Test event ${reply.eventId} queued.`));
    await loadLog();
  });
  const rotate = act(async () => {
    const reply = await api("POST", `/v1/webhooks/${seg(id)}:rotateSecret`, { body: {} });
    message.replaceChildren(secretPanel("New signing secret", reply.webhook.secret || ""));
  });
  const remove = confirmButton("Delete", `Delete ${id} for good?`, act(async () => {
    await api("DELETE", `/v1/webhooks/${seg(id)}`);
    location.hash = "#/webhooks";
  }), { id: "webhook-delete" });
  await loadLog();
  const timer = setInterval(() => loadLog().catch(() => clearInterval(timer)), 1000);
  onLeave(() => clearInterval(timer));
  return h(
    "div",
    { "data-webhook-id": w.id },
    h("h1", { tabindex: "-1" }, `Webhook ${w.id}`),
    facts([
      ["URL", w.url],
      ["Description", w.description || ""],
      ["Format", w.format || ""],
      ["Events", (w.events || []).join(", ") || "every event"],
      ["State", w.enabled ? "enabled" : `disabled ${w.disabledReason || ""}`],
      ["Token", w.hasToken ? "set" : "none"],
      ["Body signed", w.signBody ? "yes" : "no"],
      ["Created", time(w.createTime)],
    ]),
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", id: "send-test", onclick: test }, "Send test event"),
      h("button", { type: "button", id: "rotate-secret", onclick: rotate }, "Rotate secret"),
      remove,
    ),
    message,
    h("h2", {}, "Delivery log"),
    log,
  );
}
