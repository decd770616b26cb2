// The marketplace view. Text from extensions and catalogs is never written as HTML: elements are built and
// filled with textContent. The only HTML inserted is what the server rendered from Markdown and
// sanitized (READMEs, reasons, config descriptions), parsed inert by DOMParser; the page's policy runs
// no inline script either way.
"use strict";

const view = {
  overview: null, kind: null, open: new Set(), tab: "installed",
  catalog: null, selected: null, searching: 0,
};

function el(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name === "html") safeHtml(node, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children || []) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Sanitized HTML from the server, parsed into an inert document and moved in node by node.
function safeHtml(node, html) {
  const parsed = new DOMParser().parseFromString(String(html), "text/html");
  for (const bad of parsed.querySelectorAll("script, style, iframe, object, embed, img, link, meta")) bad.remove();
  node.replaceChildren(...Array.from(parsed.body.childNodes));
  for (const link of node.querySelectorAll("a[href]")) {
    link.setAttribute("rel", "noopener noreferrer nofollow");
    link.setAttribute("target", "_blank");
  }
}

function setStatus(text, isError, id) {
  const status = document.getElementById(id || "status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function describe(error) {
  return error.hint ? error.message + " — " + error.hint : error.message;
}

async function call(method, args, statusId) {
  try {
    return await symphony.call(method, args || {});
  } catch (error) {
    setStatus(describe(error), true, statusId);
    throw error;
  }
}

// Tabs

function showTab(tab) {
  view.tab = tab;
  for (const button of document.querySelectorAll("#tabs button")) {
    button.setAttribute("aria-pressed", String(button.dataset.tab === tab));
  }
  document.getElementById("installed-view").hidden = tab !== "installed";
  document.getElementById("market-view").hidden = tab !== "market";
  if (tab === "market" && view.catalog === null) openCatalog(false);
}

// What is installed

async function load(rescan) {
  try {
    view.overview = await call("overview", { rescan: Boolean(rescan) });
  } catch (error) {
    return;
  }
  render();
}

function render() {
  const overview = view.overview;
  const total = overview.extensions.length;
  setStatus(total === 1 ? "1 extension installed" : total + " extensions installed");
  renderKinds(overview);
  const main = document.getElementById("extensions");
  const sections = [];
  for (const kind of overview.kinds) {
    if (view.kind !== null && view.kind !== kind) continue;
    const items = overview.extensions.filter((extension) => extension.kind === kind);
    if (items.length === 0) continue;
    sections.push(
      el("section", { className: "kind", "data-kind": kind }, [
        el("h2", { text: kind + "s (" + items.length + ")" }),
        el("div", { className: "cards" }, items.map(card)),
      ])
    );
  }
  if (sections.length === 0) {
    sections.push(el("p", { className: "status", text: "No extensions of this kind are installed." }));
  }
  // Open config editors survive a refresh as they are, unsaved edits and error marks included.
  const forms = new Map(Array.from(main.querySelectorAll("form.config")).map((form) => [form.dataset.config, form]));
  main.replaceChildren(...sections);
  for (const id of view.open) {
    const form = forms.get(id);
    const node = cardOf(id);
    if (form && node) node.append(form);
    else openConfig(id);
  }
  document.body.dataset.ready = "1";
}

function renderKinds(overview) {
  const nav = document.getElementById("kinds");
  const button = (label, kind) =>
    el("button", {
      type: "button",
      text: label,
      "aria-pressed": String(view.kind === kind),
      onclick: () => { view.kind = kind; render(); },
    });
  nav.replaceChildren(
    button("All", null),
    ...overview.kinds.map((kind) => button(kind + "s " + overview.counts[kind], kind))
  );
}

function statusClass(status) {
  if (status === "running") return "running";
  if (status === "needs your consent") return "consent";
  if (status === "disabled") return "disabled";
  if (status.startsWith("failed")) return "failed";
  if (status.startsWith("cannot")) return "cannot";
  return "idle";
}

function card(extension) {
  const state = extension.enabled ? extension.state : "disabled";
  return el("article", { className: "card", "data-extension": extension.id, "data-state": state }, [
    el("header", {}, [
      el("h3", { className: "name", text: extension.name }),
      el("span", { className: "id", text: extension.id }),
      el("span", { className: "version", text: "v" + extension.version }),
      el("span", { className: "badge " + statusClass(extension.status), "data-status": extension.status, text: extension.status }),
    ]),
    extension.summary ? el("p", { className: "summary", text: extension.summary }) : null,
    extension.problem
      ? el("p", { className: "problem", text: extension.problem.message }, [
          extension.problem.hint ? el("span", { className: "hint", text: " " + extension.problem.hint }) : null,
        ])
      : null,
    permissions(extension),
    actions(extension),
  ]);
}

function scopes(permission) {
  const items = [].concat(permission.paths || [], permission.hosts || [], permission.names || [], permission.commands || []);
  return items.join(", ");
}

function permissions(extension) {
  const perms = extension.permissions;
  if (!perms) return null;
  if (perms.error) return el("div", { className: "perms problem", text: perms.error });
  if (perms.requested.length === 0) {
    return el("div", { className: "perms hint", text: "Requests no permissions." });
  }
  const needs = new Set(perms.needs_consent);
  const requested = el(
    "ul",
    {},
    perms.requested.map((permission) => {
      const scope = scopes(permission);
      const atoms = scope ? scope.split(", ").map((item) => permission.type + " " + item) : [permission.type];
      // Marked only after an upgrade: what the new version asks for beyond the earlier grant.
      const isNew = Boolean(perms.previous_version) && atoms.some((atom) => needs.has(atom));
      return el("li", { className: isNew ? "new" : null, "data-permission": permission.type }, [
        el("span", { className: "type", text: permission.type + (scope ? " " + scope : "") }),
        el("span", { className: "reason", text: " — " + permission.reason }),
      ]);
    })
  );
  let consent;
  if (perms.satisfied) {
    const granted = perms.granted_version ? "granted to v" + perms.granted_version : "allowed";
    const by = perms.granted_by ? " by " + perms.granted_by + ", " + new Date(perms.granted_at).toLocaleString() : "";
    consent = el("p", { className: "consent ok", text: "All requested permissions are " + granted + "." }, [
      by ? el("span", { className: "hint", text: " Granted" + by + "." }) : null,
    ]);
  } else {
    const since = perms.previous_version
      ? "Version " + extension.version + " asks for more than v" + perms.previous_version + " was granted: "
      : "Needs your consent: ";
    const denied = perms.denied_by_policy.map((entry) => entry.permission + " (denied by policy rule " + entry.rule + ")");
    consent = el("p", { className: "consent", "data-consent": "needed", text: since + perms.needs_consent.concat(denied).join("; ") });
  }
  return el("div", { className: "perms" }, [el("strong", { text: "Permissions" }), requested, consent]);
}

function actions(extension) {
  const perms = extension.permissions;
  const buttons = [
    extension.is_this_view
      ? el("span", { className: "hint", text: "This view." })
      : el("label", {}, [
          el("input", {
            type: "checkbox",
            "data-action": "enabled",
            checked: extension.enabled,
            onchange: (event) => act("set_enabled", { extension: extension.id, enabled: event.target.checked }),
          }),
          document.createTextNode("Enabled"),
        ]),
  ];
  if (perms && !perms.error && perms.needs_consent.length > 0) {
    buttons.push(el("button", { type: "button", className: "primary", "data-action": "review", text: "Review permissions…", onclick: (event) => reviewGrant(extension.id, event.currentTarget) }));
  }
  if (perms && !perms.error && perms.granted_version) {
    buttons.push(el("button", { type: "button", className: "danger", "data-action": "revoke", text: "Revoke", onclick: () => act("revoke", { extension: extension.id }) }));
  }
  if (extension.has_config) {
    buttons.push(el("button", { type: "button", "data-action": "configure", text: "Configure", "aria-expanded": String(view.open.has(extension.id)), onclick: () => toggleConfig(extension.id) }));
  }
  if (extension.managed) {
    buttons.push(el("button", { type: "button", "data-action": "upgrade", text: "Upgrade…", onclick: (event) => reviewUpgrade(extension.id, event.currentTarget) }));
    buttons.push(el("button", { type: "button", className: "danger", "data-action": "uninstall", text: "Uninstall…", onclick: (event) => confirmUninstall(extension, event.currentTarget) }));
  }
  return el("div", { className: "actions" }, buttons);
}

async function act(method, args) {
  let updated;
  try {
    updated = await call(method, args);
  } catch (error) {
    return;
  }
  replace(updated);
}

function replace(summary) {
  const list = view.overview.extensions;
  const index = list.findIndex((extension) => extension.id === summary.id);
  if (index >= 0) list[index] = summary;
  render();
}

// The consent dialog

const dialog = {
  node: () => document.getElementById("dialog"),
  opener: null,
};

function openDialog(title, body, buttons, opener) {
  const node = dialog.node();
  dialog.opener = opener || document.activeElement;
  document.getElementById("dialog-title").textContent = title;
  document.getElementById("dialog-body").replaceChildren(...body);
  document.getElementById("dialog-actions").replaceChildren(...buttons);
  if (!node.open) node.showModal();
  const first = node.querySelector("#dialog-body input:not(:disabled), #dialog-actions button");
  if (first) first.focus();
}

function closeDialog() {
  const node = dialog.node();
  if (node.open) node.close();
}

function consentItem(item, index) {
  const id = "perm-" + index;
  const head = item.choosable
    ? el("div", { className: "choice" }, [
        el("input", { type: "checkbox", id: id, "data-permission": item.permission, checked: item.checked }),
        el("label", { for: id }, [el("span", { className: "scope", text: item.permission })]),
      ])
    : el("div", { className: "choice" }, [el("span", { className: "scope", text: item.permission })]);
  return el("li", { className: item.flagged ? "flagged" : null, "data-item": item.permission, "data-flagged": String(item.flagged) }, [
    head,
    item.flagged ? el("span", { className: "flag", text: "Reaches beyond its own folders: not ticked unless you tick it." }) : null,
    el("span", { className: "reason", html: item.reason_html }),
    item.path && item.path !== item.scope ? el("span", { className: "hint", text: "means " + item.path }) : null,
    item.notes.length
      ? el("ul", { className: "notes" }, item.notes.map((note) => el("li", { className: note.severity, text: note.message })))
      : null,
    el("span", { className: "item-status", text: item.status }),
  ]);
}

function consentBody(consent, extra) {
  const body = [];
  for (const warning of consent.warnings) {
    body.push(el("p", { className: "look-twice", text: "Look twice: " + warning.field + " " + warning.message }));
  }
  body.push(...(extra || []));
  if (consent.items.length === 0) {
    body.push(el("p", { className: "hint", text: "It asks for no permissions." }));
  } else {
    body.push(el("p", { className: "hint", text: "Tick what you allow. Each permission is granted on its own; nothing is granted until you confirm." }));
    body.push(el("ul", { className: "consent-items" }, consent.items.map(consentItem)));
  }
  return body;
}

function ticked() {
  return Array.from(document.querySelectorAll("#dialog-body input[type='checkbox'][data-permission]"))
    .filter((box) => box.checked)
    .map((box) => box.dataset.permission);
}

function showOutcome(title, granted, consent, message) {
  const left = consent.items.filter((item) => item.choosable).map((item) => item.permission);
  const body = [];
  if (message) body.push(el("p", { text: message }));
  body.push(el("p", { className: "result-granted", "data-outcome": "granted", text: granted.length ? "Granted: " + granted.join(", ") + "." : "Nothing was granted." }));
  if (left.length) {
    body.push(el("p", { className: "result-left", "data-outcome": "left", text: "Not granted: " + left.join(", ") + ". It will not run until these are granted." }));
  } else if (consent.satisfied) {
    body.push(el("p", { className: "result-granted", "data-outcome": "complete", text: "Consent is complete: it may run." }));
  }
  const close = el("button", { type: "button", className: "primary", "data-action": "close", text: "Close", onclick: closeDialog });
  openDialog(title, body, [close]);
  close.focus();
}

async function reviewGrant(id, opener) {
  let consent;
  try {
    consent = await call("consent", { extension: id });
  } catch (error) {
    return;
  }
  const title = "Permissions of " + consent.title;
  const confirm = el("button", { type: "button", className: "primary", "data-action": "confirm", text: "Grant ticked permissions" });
  const cancel = el("button", { type: "button", "data-action": "cancel", text: "Cancel", onclick: closeDialog });
  confirm.addEventListener("click", async () => {
    const chosen = ticked();
    if (chosen.length === 0) {
      showOutcome(title, [], consent, "You ticked nothing, so nothing was granted.");
      return;
    }
    confirm.disabled = true;
    let answer;
    try {
      answer = await call("grant", { extension: id, permissions: chosen });
    } catch (error) {
      confirm.disabled = false;
      return;
    }
    replace(answer.summary);
    showOutcome(title, answer.granted, answer.consent);
  });
  openDialog(title, consentBody(consent), [cancel, confirm], opener);
}

async function installFlow(listing, opener) {
  const consent = listing.consent;
  const title = "Install " + listing.name + " " + consent.version;
  const confirm = el("button", { type: "button", className: "primary", "data-action": "confirm", text: "Install" });
  const cancel = el("button", { type: "button", "data-action": "cancel", text: "Cancel", onclick: closeDialog });
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    confirm.textContent = "Installing…";
    await finishInstall("install", { extension: listing.id, version: consent.version, permissions: ticked() }, title, confirm);
  });
  openDialog(title, consentBody(consent, [el("p", { text: "It is installed into an environment of its own and runs in isolated workers." })]), [cancel, confirm], opener);
}

async function reviewUpgrade(id, opener) {
  let review;
  try {
    review = await call("review_upgrade", { extension: id });
  } catch (error) {
    return;
  }
  const title = "Upgrade " + review.title + " to " + review.version;
  const changes = [];
  changes.push(el("p", { text: "Installed: v" + review.installed_version + ". Latest listed: v" + review.version + "." }));
  const diff = el("ul", { className: "diff" });
  for (const added of review.changes.added) diff.append(el("li", { className: "new", "data-change": "added", text: "New: " + added }));
  for (const dropped of review.changes.dropped) diff.append(el("li", { "data-change": "dropped", text: "No longer asked: " + dropped }));
  if (diff.childElementCount === 0) diff.append(el("li", { "data-change": "none", text: "It asks for the same permissions." }));
  changes.push(diff);
  const confirm = el("button", { type: "button", className: "primary", "data-action": "confirm", text: "Upgrade" });
  const cancel = el("button", { type: "button", "data-action": "cancel", text: "Cancel", onclick: closeDialog });
  confirm.disabled = review.version === review.installed_version;
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    confirm.textContent = "Upgrading…";
    await finishInstall("upgrade", { extension: id, version: review.version, permissions: ticked() }, title, confirm);
  });
  openDialog(title, consentBody(review, changes), [cancel, confirm], opener);
}

async function finishInstall(method, args, title, confirm) {
  let answer;
  try {
    answer = await call(method, args);
  } catch (error) {
    confirm.disabled = false;
    confirm.textContent = method === "install" ? "Install" : "Upgrade";
    document.getElementById("dialog-body").append(el("p", { className: "problem", role: "alert", text: describe(error) }));
    return;
  }
  const granted = [].concat(...Object.values(answer.granted));
  showOutcome(title, granted, answer.consent, (method === "install" ? "Installed " : "Upgraded to ") + "v" + answer.version + ".");
  await load(false);
  if (view.selected === args.extension) showDetails(args.extension);
  if (view.catalog && view.catalog.available) runSearch();
}

function confirmUninstall(extension, opener) {
  const title = "Uninstall " + extension.name;
  const purge = el("input", { type: "checkbox", id: "purge" });
  const confirm = el("button", { type: "button", className: "danger", "data-action": "confirm", text: "Uninstall" });
  const cancel = el("button", { type: "button", "data-action": "cancel", text: "Cancel", onclick: closeDialog });
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    try {
      await call("uninstall", { extension: extension.id, purge: purge.checked });
    } catch (error) {
      confirm.disabled = false;
      return;
    }
    closeDialog();
    setStatus("Uninstalled " + extension.id + ".");
    await load(false);
    if (view.selected === extension.id) showDetails(extension.id);
    if (view.catalog && view.catalog.available) runSearch();
  });
  openDialog(title, [
    el("p", { text: "Its environment and every grant it holds are removed; it stops first if it runs." }),
    el("div", { className: "choice" }, [purge, el("label", { for: "purge", text: "Also delete its data, cache and config" })]),
  ], [cancel, confirm], opener);
}

// The marketplace's catalog

async function openCatalog(refresh) {
  setStatus(refresh ? "Refreshing the catalog…" : "Loading the catalog…", false, "market-status");
  try {
    view.catalog = await call("catalog", { refresh: Boolean(refresh) }, "market-status");
  } catch (error) {
    view.catalog = null;
    return;
  }
  if (!view.catalog.available) {
    setStatus(view.catalog.message + (view.catalog.hint ? " — " + view.catalog.hint : ""), true, "market-status");
    document.getElementById("results").replaceChildren();
    return;
  }
  const select = document.getElementById("kind-filter");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "all kinds" }), ...view.catalog.kinds.map((kind) => el("option", { value: kind, text: kind + "s", selected: kind === chosen })));
  await runSearch();
}

async function runSearch() {
  if (!view.catalog || !view.catalog.available) return;
  const text = document.getElementById("search").value;
  const kind = document.getElementById("kind-filter").value;
  const ticket = ++view.searching;
  let answer;
  try {
    answer = await call("search", { text: text, kind: kind || null }, "market-status");
  } catch (error) {
    return;
  }
  if (ticket !== view.searching) return; // a later search answered first
  const shown = answer.results.length;
  const more = answer.total > shown ? " (the first " + shown + " shown)" : "";
  setStatus(answer.total + " of " + answer.catalog + " extensions match" + more + ".", false, "market-status");
  document.getElementById("results").replaceChildren(...answer.results.map(resultRow));
  document.body.dataset.results = String(ticket);
}

function resultRow(result) {
  const installed = result.installed ? (result.installed === result.latest ? "installed" : "v" + result.installed + " installed") : null;
  return el("li", {}, [
    el("button", {
      type: "button", className: "result", "data-listing": result.id,
      "aria-current": String(view.selected === result.id),
      onclick: () => showDetails(result.id, true),
    }, [
      el("span", { className: "line" }, [
        el("strong", { className: "name", text: result.name }),
        el("span", { className: "id", text: result.id }),
        el("span", { className: "badge", text: result.kind }),
        el("span", { className: "version", text: "v" + result.latest }),
        installed ? el("span", { className: "badge running", text: installed }) : null,
        result.look_twice ? el("span", { className: "badge failed", text: "look twice" }) : null,
      ]),
      el("span", { className: "summary", text: result.summary }),
    ]),
  ]);
}

async function showDetails(id, focus) {
  view.selected = id;
  for (const button of document.querySelectorAll("#results button.result")) {
    button.setAttribute("aria-current", String(button.dataset.listing === id));
  }
  const pane = document.getElementById("details");
  let listing;
  try {
    listing = await call("listing", { extension: id }, "market-status");
  } catch (error) {
    return;
  }
  if (view.selected !== id) return;
  const consent = listing.consent;
  const installed = listing.installed;
  const buttons = [];
  if (!installed) {
    buttons.push(el("button", { type: "button", className: "primary", "data-action": "install", text: "Install v" + listing.latest + "…", onclick: (event) => installFlow(listing, event.currentTarget) }));
  } else {
    buttons.push(el("span", { className: "badge " + statusClass(installed.status), "data-status": installed.status, text: "v" + installed.version + " installed: " + installed.status }));
    if (installed.managed && installed.version !== listing.latest) {
      buttons.push(el("button", { type: "button", className: "primary", "data-action": "upgrade", text: "Upgrade to v" + listing.latest + "…", onclick: (event) => reviewUpgrade(id, event.currentTarget) }));
    }
    if (installed.managed) {
      buttons.push(el("button", { type: "button", className: "danger", "data-action": "uninstall", text: "Uninstall…", onclick: (event) => confirmUninstall({ id: id, name: listing.name }, event.currentTarget) }));
    }
  }
  const links = listing.links.map((link) =>
    el("li", {}, [
      link.safe
        ? el("a", { href: link.url, rel: "noopener noreferrer nofollow", target: "_blank", text: link.label })
        : el("span", { text: link.label + ": " + link.url + " (not a web link)" }),
    ])
  );
  pane.replaceChildren(
    el("header", {}, [
      el("h2", { className: "name", text: listing.name }),
      el("span", { className: "id", text: listing.id }),
      el("span", { className: "badge", text: listing.kind }),
    ]),
    ...listing.warnings.map((warning) => el("p", { className: "look-twice", text: "Look twice: " + warning.field + " " + warning.message })),
    el("p", { className: "summary", text: listing.summary }),
    el("div", { className: "actions" }, buttons),
    el("dl", { className: "facts" }, [
      el("dt", { text: "Publisher" }), el("dd", { text: listing.publisher.distribution + " on " + listing.publisher.index }),
      el("dt", { text: "Targets" }), el("dd", { text: listing.targets }),
      el("dt", { text: "Versions" }), el("dd", { className: "versions", text: listing.versions.map((version) => version.version).join(", ") }),
    ]),
    links.length ? el("ul", { className: "links", "aria-label": "Links" }, links) : null,
    el("h3", { text: "Permissions of v" + consent.version }),
    consent.items.length
      ? el("ul", { className: "consent-items readonly" }, consent.items.map((item) =>
          el("li", { className: item.flagged ? "flagged" : null, "data-item": item.permission }, [
            el("span", { className: "scope", text: item.permission }),
            item.flagged ? el("span", { className: "flag", text: "Reaches beyond its own folders" }) : null,
            el("span", { className: "reason", html: item.reason_html }),
            item.notes.length ? el("ul", { className: "notes" }, item.notes.map((note) => el("li", { className: note.severity, text: note.message }))) : null,
          ])))
      : el("p", { className: "hint", text: "It asks for no permissions." }),
    el("h3", { text: "Read me" }),
    el("div", { className: "readme", html: listing.readme_html })
  );
  pane.hidden = false;
  pane.dataset.listing = id;
  if (focus) pane.focus();
}

// The config editor

function cardOf(id) {
  return Array.from(document.querySelectorAll("article.card")).find((node) => node.dataset.extension === id) || null;
}

function toggleConfig(id) {
  if (view.open.has(id)) {
    view.open.delete(id);
    const form = cardOf(id) && cardOf(id).querySelector("form.config");
    if (form) form.remove();
  } else {
    view.open.add(id);
    openConfig(id);
  }
  const button = cardOf(id) && cardOf(id).querySelector("[data-action='configure']");
  if (button) button.setAttribute("aria-expanded", String(view.open.has(id)));
}

async function openConfig(id) {
  const node = cardOf(id);
  if (!node) return;
  let state;
  try {
    state = await call("config_form", { extension: id });
  } catch (error) {
    return;
  }
  const existing = node.querySelector("form.config");
  const form = configForm(id, state);
  if (existing) existing.replaceWith(form);
  else node.append(form);
}

function valueAt(values, key) {
  let value = values;
  for (const part of key.split(".")) {
    if (value === null || typeof value !== "object" || !(part in value)) return undefined;
    value = value[part];
  }
  return value;
}

function configForm(id, state) {
  const editors = [];
  const values = state.values || {};
  const build = (field) => {
    if (field.widget === "group") {
      return el("fieldset", { "data-key": field.key }, [
        el("legend", { text: field.label }),
        field.description_html ? el("p", { className: "hint", html: field.description_html }) : null,
        ...field.fields.map(build),
      ]);
    }
    const editor = fieldEditor(id, field, valueAt(values, field.key), state.sources[field.key], state.errors[field.key]);
    editors.push(editor);
    return editor.row;
  };
  const result = el("p", { className: "form-result", role: "status" });
  if (state.errors[""]) {
    result.textContent = state.errors[""];
    result.classList.add("error");
  }
  const save = el("button", { type: "submit", className: "primary", "data-action": "save", text: "Save" });
  const form = el("form", { className: "config", novalidate: true, "data-config": id, "aria-busy": "false" }, [
    el("strong", { text: state.form.title }),
    state.form.description_html ? el("div", { className: "hint", html: state.form.description_html }) : null,
    ...state.form.fields.map(build),
    el("div", { className: "actions" }, [save, result]),
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    const changes = {};
    const reset = [];
    let unreadable = false;
    for (const editor of editors) {
      editor.setError(null);
      if (editor.resetting()) {
        reset.push(editor.key);
        continue;
      }
      let value;
      try {
        value = editor.read();
      } catch (error) {
        editor.setError(error.message);
        unreadable = true;
        continue;
      }
      if (value !== undefined && JSON.stringify(value) !== JSON.stringify(editor.initial)) {
        changes[editor.key] = value;
      }
    }
    if (unreadable) {
      result.textContent = "Nothing saved: fix the fields marked in red.";
      result.className = "form-result error";
      return;
    }
    if (Object.keys(changes).length === 0 && reset.length === 0) {
      result.textContent = "Nothing changed.";
      result.className = "form-result";
      return;
    }
    form.setAttribute("aria-busy", "true");
    save.disabled = true;
    save.textContent = "Saving…";
    result.textContent = "Saving…";
    result.className = "form-result";
    let answer;
    try {
      answer = await symphony.call("save_config", { extension: id, changes: changes, reset: reset });
    } catch (error) {
      form.setAttribute("aria-busy", "false");
      save.disabled = false;
      save.textContent = "Save";
      result.textContent = "Nothing saved: " + describe(error);
      result.className = "form-result error";
      return;
    }
    const fresh = configForm(id, answer.state);
    form.replaceWith(fresh);
    const status = fresh.querySelector(".form-result");
    const refused = Object.keys(answer.errors).length;
    if (refused > 0) {
      // Nothing of this save was kept: the person's edits stay in the fields, to fix and save again.
      for (const editor of fresh.editors) {
        if (editor.key in changes) editor.write(changes[editor.key]);
        if (answer.errors[editor.key]) editor.setError(answer.errors[editor.key]);
      }
      const kept = answer.kept.length ? " (" + answer.kept.join(", ") + " could not be put back as it was)" : "";
      status.textContent = answer.errors[""] ? "Nothing saved: " + answer.errors[""] + kept : "Nothing saved: fix the fields marked in red." + kept;
      status.className = "form-result error";
    } else {
      const parts = [];
      if (answer.saved.length) parts.push("Saved " + answer.saved.join(", ") + ".");
      if (answer.reset.length) parts.push("Reset " + answer.reset.join(", ") + " to the default.");
      status.textContent = parts.join(" ") || "Nothing changed.";
      status.className = "form-result ok";
    }
  });
  form.editors = editors;
  return form;
}

function bounds(field) {
  const parts = [];
  if (field.minimum !== undefined) parts.push("≥ " + field.minimum);
  if (field.exclusive_minimum !== undefined) parts.push("> " + field.exclusive_minimum);
  if (field.maximum !== undefined) parts.push("≤ " + field.maximum);
  if (field.exclusive_maximum !== undefined) parts.push("< " + field.exclusive_maximum);
  if (field.min_length !== undefined) parts.push("at least " + field.min_length + " long");
  if (field.max_length !== undefined) parts.push("at most " + field.max_length + " long");
  return parts.join(", ");
}

function scalarInput(field, value, name) {
  switch (field.widget) {
    case "checkbox":
      return el("input", { type: "checkbox", name: name, checked: value === true });
    case "integer":
    case "number":
      return el("input", {
        type: "number", name: name, value: value === null || value === undefined ? "" : String(value),
        min: field.minimum, max: field.maximum, step: field.widget === "integer" ? "1" : "any",
      });
    case "select": {
      const select = el("select", { name: name });
      if (field.nullable) select.append(el("option", { value: "null", text: "—" }));
      for (const option of field.options) {
        select.append(el("option", { value: JSON.stringify(option), text: String(option), selected: JSON.stringify(option) === JSON.stringify(value) }));
      }
      return select;
    }
    case "secret":
      return el("input", { type: "password", name: name, autocomplete: "off", placeholder: value ? "unchanged (hidden)" : "not set" });
    default:
      return el("input", { type: "text", name: name, value: value === null || value === undefined ? "" : String(value) });
  }
}

function readScalar(field, input) {
  switch (field.widget) {
    case "checkbox":
      return input.checked;
    case "integer":
    case "number":
      if (input.value.trim() === "") {
        if (field.nullable) return null;
        throw new Error("enter a number");
      }
      return Number(input.value);
    case "select":
      return JSON.parse(input.value);
    case "secret":
      return input.value === "" ? undefined : input.value;
    default:
      return field.nullable && input.value === "" ? null : input.value;
  }
}

function fieldEditor(extension, field, value, source, error) {
  const name = "cfg-" + extension + "-" + field.key;
  const meta = [bounds(field), source ? "from " + source : null].filter(Boolean).join(" · ");
  const errorNode = el("span", { className: "field-error", role: "alert", id: name + "-error" });
  const control = el("div", { className: "control" });
  let read;
  let write;
  let resetting = false;
  if (field.widget === "list") {
    const rows = el("div", { className: "list" });
    const addRow = (item) => {
      const index = rows.childElementCount + 1;
      const input = scalarInput(field.item, item, name + "[]");
      input.setAttribute("aria-label", field.label + " " + index);
      const row = el("div", { className: "list-item" }, [input, el("button", { type: "button", className: "quiet", text: "×", "aria-label": "Remove " + field.label + " " + index, onclick: () => row.remove() })]);
      rows.append(row);
    };
    write = (items) => { rows.replaceChildren(); (items || []).forEach(addRow); };
    write(value);
    control.append(rows, el("button", { type: "button", className: "quiet", text: "Add", "aria-label": "Add to " + field.label, onclick: () => addRow(undefined) }));
    read = () => Array.from(rows.querySelectorAll("input, select")).map((input) => readScalar(field.item, input));
  } else if (field.widget === "json") {
    const area = el("textarea", { name: name });
    write = (data) => { area.value = data === undefined ? "" : JSON.stringify(data, null, 2); };
    write(value);
    control.append(area);
    read = () => {
      try {
        return JSON.parse(area.value);
      } catch (parseError) {
        throw new Error("not valid JSON: " + parseError.message);
      }
    };
  } else {
    let input = scalarInput(field, value, name);
    control.append(input);
    read = () => readScalar(field, input);
    write = (data) => {
      const fresh = scalarInput(field, data, name);
      fresh.id = input.id;
      for (const attribute of ["aria-describedby"]) if (input.hasAttribute(attribute)) fresh.setAttribute(attribute, input.getAttribute(attribute));
      input.replaceWith(fresh);
      input = fresh;
    };
  }
  const overridden = typeof source === "string" && source.startsWith("override");
  const resetButton = overridden
    ? el("button", {
        type: "button", className: "quiet", "data-action": "reset",
        text: "Reset to default", "aria-label": "Reset " + field.label + " to its default",
        onclick: () => {
          resetting = true;
          if (field.widget !== "secret") write(field.default);
          row.classList.add("resetting");
          resetButton.textContent = "Resets when saved";
          resetButton.disabled = true;
          control.querySelector("input, select, textarea")?.addEventListener("input", () => { resetting = false; }, { once: true });
        },
      })
    : null;
  if (resetButton) control.append(resetButton);
  const descriptionId = name + "-description";
  const row = el("div", { className: "field", "data-key": field.key, "data-widget": field.widget }, [
    el("label", { for: name, text: field.label + (field.required ? " *" : "") }),
    control,
    field.description_html ? el("span", { className: "description", id: descriptionId, html: field.description_html }) : null,
    meta ? el("span", { className: "meta", text: meta }) : null,
    errorNode,
  ]);
  const firstInput = control.querySelector("input, select, textarea");
  if (firstInput) {
    firstInput.id = name;
    firstInput.setAttribute("aria-describedby", [field.description_html ? descriptionId : null, name + "-error"].filter(Boolean).join(" "));
  }
  const editor = {
    key: field.key,
    row: row,
    initial: field.widget === "secret" ? undefined : value,
    read: read,
    write: (data) => { resetting = false; write(data); },
    resetting: () => resetting,
    setError(message) {
      errorNode.textContent = message || "";
      row.classList.toggle("invalid", Boolean(message));
    },
  };
  if (error) editor.setError(error);
  return editor;
}

// Start

for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => showTab(button.dataset.tab));
}
document.getElementById("rescan").addEventListener("click", () => load(true));
document.getElementById("refresh-catalog").addEventListener("click", () => openCatalog(true));
document.getElementById("search-form").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
document.getElementById("search").addEventListener("input", () => {
  clearTimeout(view.typing);
  view.typing = setTimeout(runSearch, 120);
});
document.getElementById("kind-filter").addEventListener("change", runSearch);
dialog.node().addEventListener("close", () => {
  if (dialog.opener && document.contains(dialog.opener)) dialog.opener.focus();
});
symphony.on("changed", () => {
  clearTimeout(view.pending);
  view.pending = setTimeout(() => load(false), 150);
});
load(false);
