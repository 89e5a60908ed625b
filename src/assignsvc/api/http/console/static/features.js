// What this server's API accepts, read from its /openapi.json (public, no key): the console
// offers a field (a stop's released arm, a webhook's format) only where the API has it.
let document_ = null;

async function openapi() {
  if (!document_) {
    document_ = fetch("/openapi.json", { credentials: "omit" })
      .then((response) => (response.ok ? response.json() : {}))
      .catch(() => ({}));
  }
  return document_;
}

/** Whether the message `schema` (e.g. "assignsvc.v1.Webhook") has the JSON field `field`. */
export async function hasField(schema, field) {
  const schemas = ((await openapi()).components || {}).schemas || {};
  return Boolean(schemas[schema] && (schemas[schema].properties || {})[field]);
}
