// The console's router: one view per location hash, drawn from /v1 calls made with the stored key.
import { api, credentials, signIn, signOut, signOutReason } from "./api.js";
import { errorBox, h } from "./dom.js";
import * as experiments from "./experiments.js";
import { createPage } from "./experiment_form.js";
import { field, onSubmit } from "./form.js";
import { keysPage } from "./keys.js";
import * as webhooks from "./webhooks.js";

const main = document.getElementById("main");
const ROUTES = [
  [/^#\/experiments\/new$/, () => createPage()],
  [/^#\/experiments\/(.+)$/, (m, refresh, onLeave) => experiments.detailPage(decodeURIComponent(m[1]), refresh, onLeave)],
  [/^#\/experiments$/, () => experiments.listPage()],
  [/^#\/webhooks\/(.+)$/, (m, refresh, onLeave) => webhooks.detailPage(decodeURIComponent(m[1]), refresh, onLeave)],
  [/^#\/webhooks$/, () => webhooks.listPage()],
  [/^#\/keys$/, () => keysPage()],
];
let leaving = [];
let drawn = 0;

function signInPage() {
  const reason = signOutReason();
  const form = h(
    "form",
    { id: "signin-form", novalidate: true },
    field("Datasource id", "datasource", { required: true, value: "default", autocomplete: "off" }),
    field("API key", "api_key", { type: "password", autocomplete: "off" }),
    h("button", { type: "submit" }, "Sign in"),
  );
  onSubmit(form, async (data) => {
    signIn(String(data.get("datasource")).trim(), String(data.get("api_key")).trim());
    await api("GET", "/v1/experiments", { query: { pageSize: "1" } });
    location.hash = "#/experiments";
  });
  return h(
    "div",
    { class: "signin" },
    h("h1", { tabindex: "-1" }, "Sign in"),
    reason ? h("p", { class: "error", role: "alert", id: "signin-reason" }, reason) : null,
    h("p", { class: "muted" }, "The key stays in this tab's session storage and is sent only to this server's API."),
    form,
  );
}

function header(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  const who = document.getElementById("who");
  if (!signedIn) {
    who.replaceChildren();
    return;
  }
  const out = h("button", { type: "button", id: "signout", class: "link" }, "Sign out");
  out.addEventListener("click", () => signOut(""));
  who.replaceChildren(h("span", { id: "datasource" }, credentials().datasource), " ", out);
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", location.hash.startsWith(link.getAttribute("href")));
  }
}

async function draw() {
  const mine = ++drawn;
  for (const leave of leaving) leave();
  leaving = [];
  const signedIn = credentials() !== null;
  header(signedIn);
  if (!signedIn || location.hash === "#/signin") {
    if (signedIn) signOut("");
    main.replaceChildren(signInPage());
    main.querySelector("input").focus();
    return;
  }
  const hash = location.hash || "#/experiments";
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    location.hash = "#/experiments";
    return;
  }
  main.setAttribute("aria-busy", "true");
  try {
    // A view left before it finished drawing stops its timers at once.
    const onLeave = (leave) => (mine === drawn ? leaving.push(leave) : leave());
    const view = await route[1](hash.match(route[0]), draw, onLeave);
    if (mine !== drawn) return;
    main.replaceChildren(view);
    const heading = main.querySelector("h1");
    if (heading && document.activeElement === document.body) heading.focus();
  } catch (error) {
    if (mine === drawn && !error.signedOut) main.replaceChildren(errorBox(error));
  } finally {
    main.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", draw);
draw();
