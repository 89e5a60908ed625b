// API keys of the signed-in datasource (admin keys): list, create (secret shown once), revoke.
import { api, seg } from "./api.js";
import { confirmButton, enumName, errorBox, h, secretPanel, table, time } from "./dom.js";
import { checkbox, field, onSubmit } from "./form.js";

const SCOPES = ["assign", "read", "admin"];

function keyRow(key, reload) {
  const revoke = key.revokeTime
    ? `revoked ${time(key.revokeTime)}`
    : confirmButton("Revoke", `Revoke ${key.name || key.id}?`, async () => {
        await api("POST", `/v1/apiKeys/${seg(key.id)}:revoke`, { body: {} });
        await reload();
      }, { "data-revoke": key.id });
  return h(
    "tr",
    { "data-key-id": key.id },
    h("td", {}, key.name || ""),
    h("td", {}, h("code", {}, key.id)),
    h("td", {}, h("code", {}, key.hint || "")),
    h("td", {}, (key.scopes || []).map((s) => enumName(s, "API_KEY_SCOPE_")).join(", ")),
    h("td", { class: "n" }, key.requestsPerSecond ? `${key.requestsPerSecond}/s, burst ${key.burst || 0}` : "unlimited"),
    h("td", {}, time(key.createTime)),
    h("td", {}, time(key.lastUsedTime)),
    h("td", {}, revoke),
  );
}

export async function keysPage() {
  const list = h("div", {});
  const created = h("div", {});
  const reload = async () => {
    try {
      const keys = (await api("GET", "/v1/apiKeys")).apiKeys || [];
      list.replaceChildren(table(["Name", "Id", "Hint", "Scopes", "Rate limit", "Created", "Last used", ""], keys.map((k) => keyRow(k, reload)), { id: "keys" }));
    } catch (error) {
      if (!error.signedOut) list.replaceChildren(errorBox(error));
    }
  };
  await reload();
  const form = h(
    "form",
    { id: "key-form", novalidate: true },
    h("h2", {}, "Create a key"),
    field("Name", "api_key.name", { required: true }),
    h("fieldset", { "data-field": "api_key.scopes" }, h("legend", {}, "Scopes"), SCOPES.map((s) => checkbox(s, "scopes", s === "assign", { value: s }))),
    field("Requests per second (0: unlimited)", "api_key.requests_per_second", { type: "number", min: "0", step: "any", value: "0" }),
    field("Burst", "api_key.burst", { type: "number", min: "0", step: "1", value: "0" }),
    h("button", { type: "submit" }, "Create key"),
  );
  onSubmit(form, async (data) => {
    const apiKey = {
      name: data.get("api_key.name"),
      scopes: data.getAll("scopes").map((s) => `API_KEY_SCOPE_${s.toUpperCase()}`),
      requestsPerSecond: Number(data.get("api_key.requests_per_second") || 0),
      burst: Number(data.get("api_key.burst") || 0),
    };
    const reply = await api("POST", "/v1/apiKeys", { body: apiKey });
    form.reset();
    created.replaceChildren(secretPanel(`Key ${reply.apiKey.name || reply.apiKey.id}`, reply.secret));
    await reload();
  });
  return h("div", {}, h("h1", { tabindex: "-1" }, "API keys"), created, list, form);
}
