// Forms: labelled fields tagged with the API's field path, and its violations shown next to them.
import { h } from "./dom.js";

/** A labelled input; `field` is the API's path of the value (where its violations go). */
export function field(label, field, attrs = {}, hint = "") {
  const id = `f-${field.replace(/[^A-Za-z0-9]+/g, "-")}`;
  const control = attrs.tag === "select" || attrs.tag === "textarea" ? attrs.tag : "input";
  const { tag, options, ...rest } = attrs;
  const input = h(control, { id, name: field, "data-field": field, ...rest }, options || []);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    hint ? h("small", {}, hint) : null,
  );
}

export function checkbox(label, name, checked, attrs = {}) {
  return h("label", { class: "check" }, h("input", { type: "checkbox", name, checked, ...attrs }), ` ${label}`);
}

/** The parent of a field path: "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a". */
function parentPath(path) {
  const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
  return cut > 0 ? path.slice(0, cut) : "";
}

export function clearViolations(form) {
  for (const old of form.querySelectorAll(".violation, .form-errors")) old.remove();
  for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
}

/** Put each violation next to the field it names (or its nearest named parent); the rest atop the form. */
export function showViolations(form, error, prefixes = []) {
  clearViolations(form);
  const loose = [];
  const violations = error.violations && error.violations.length ? error.violations : [{ field: "", description: error.message }];
  for (const violation of violations) {
    let target = null;
    for (let path = violation.field || ""; path && !target; path = parentPath(path)) {
      for (const name of [path, ...prefixes.map((p) => `${p}.${path}`)]) {
        target = target || form.querySelector(`[data-field="${CSS.escape(name)}"]`);
      }
    }
    if (!target) {
      loose.push(violation);
      continue;
    }
    target.setAttribute("aria-invalid", "true");
    const note = h("p", { class: "violation", role: "alert" }, violation.description);
    if (target.tagName === "FIELDSET" || target.tagName === "TR") target.append(note);
    else target.after(note);
  }
  if (loose.length) {
    const box = h(
      "div",
      { class: "form-errors error", role: "alert" },
      h("p", {}, error.message),
      loose.filter((v) => v.field).map((v) => h("p", { class: "violation" }, `${v.field}: ${v.description}`)),
    );
    form.prepend(box);
  }
}

/** Run `action` for a submitted form; show what the API refuses next to the fields. */
export function onSubmit(form, action, prefixes) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearViolations(form);
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await action(new FormData(form));
    } catch (error) {
      if (!error.signedOut) showViolations(form, error, prefixes);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}
