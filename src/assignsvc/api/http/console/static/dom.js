// DOM helpers: every value becomes a text node or an attribute, never markup.
const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An HTML element: h("td", {class: "n"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, as h. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** "EXPERIMENT_STATUS_RUNNING" -> "running". */
export function enumName(value, prefix) {
  return value ? String(value).replace(prefix, "").toLowerCase().replaceAll("_", " ") : "";
}

export function percent(fraction) {
  return fraction === undefined || fraction === null ? "—" : `${(Number(fraction) * 100).toFixed(1)}%`;
}

export function time(value) {
  return value ? new Date(value).toLocaleString() : "—";
}

/** A table whose cells are given as arrays of nodes or strings; wrapped so it scrolls on a phone. */
export function table(headers, rows, attrs) {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      attrs,
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows),
    ),
  );
}

/** A definition list from [label, value] pairs (values may be nodes). */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value === "" || value === undefined ? "—" : value)]),
  );
}

/** An error box with the API's message (role=alert so screen readers announce it). */
export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

/** A button that asks once more before it acts: the first press arms it. */
export function confirmButton(label, confirmLabel, action, attrs) {
  const button = h("button", { type: "button", class: "danger", ...attrs }, label);
  let armed = false;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      return;
    }
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A panel showing a secret that the API returns once. */
export function secretPanel(title, secret) {
  return h(
    "section",
    { class: "secret", role: "status" },
    h("h3", {}, title),
    h("p", {}, "Copy it now: it is shown only this once."),
    h("code", { class: "secret-value" }, secret),
  );
}
