// The marketplace view. Every text shown comes from installed extensions, so nothing here is ever
// written as HTML: elements are built and filled with textContent.
"use strict";

const view = { overview: null, kind: null, open: new Set() };

function el(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children || []) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function describe(error) {
  return error.hint ? error.message + " — " + error.hint : error.message;
}

// Loading and rendering the list

async function load(rescan) {
  try {
    view.overview = await symphony.call("overview", { rescan: Boolean(rescan) });
  } catch (error) {
    setStatus(describe(error), true);
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

function card(extension) {
  const state = extension.enabled ? extension.state : "disabled";
  const node = el("article", { className: "card", "data-extension": extension.id, "data-state": state }, [
    el("header", {}, [
      el("h3", { text: extension.name }),
      el("span", { className: "id", text: extension.id }),
      el("span", { className: "version", text: "v" + extension.version }),
      el("span", { className: "badge " + state, text: state }),
    ]),
    extension.summary ? el("p", { text: extension.summary }) : null,
    extension.problem
      ? el("p", { className: "problem", text: extension.problem.message }, [
          extension.problem.hint ? el("span", { className: "hint", text: " " + extension.problem.hint }) : null,
        ])
      : null,
    permissions(extension),
    actions(extension),
  ]);
  return node;
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
    buttons.push(el("button", { type: "button", className: "primary", "data-action": "grant", text: "Grant", onclick: () => act("grant", { extension: extension.id }) }));
  }
  if (perms && !perms.error && perms.granted_version) {
    buttons.push(el("button", { type: "button", className: "danger", "data-action": "revoke", text: "Revoke", onclick: () => act("revoke", { extension: extension.id }) }));
  }
  if (extension.has_config) {
    buttons.push(el("button", { type: "button", "data-action": "configure", text: "Configure", onclick: () => toggleConfig(extension.id) }));
  }
  return el("div", { className: "actions" }, buttons);
}

async function act(method, args) {
  try {
    const updated = await symphony.call(method, args);
    replace(updated);
  } catch (error) {
    setStatus(describe(error), true);
  }
}

function replace(summary) {
  const list = view.overview.extensions;
  const index = list.findIndex((extension) => extension.id === summary.id);
  if (index >= 0) list[index] = summary;
  render();
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
}

async function openConfig(id) {
  const node = cardOf(id);
  if (!node) return;
  let state;
  try {
    state = await symphony.call("config_form", { extension: id });
  } catch (error) {
    setStatus(describe(error), true);
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
      return el("fieldset", { "data-key": field.key }, [el("legend", { text: field.label }), ...field.fields.map(build)]);
    }
    const editor = fieldEditor(field, valueAt(values, field.key), state.sources[field.key], state.errors[field.key]);
    editors.push(editor);
    return editor.row;
  };
  const result = el("p", { className: "form-result", role: "status" });
  if (state.errors[""]) {
    result.textContent = state.errors[""];
    result.classList.add("error");
  }
  const form = el("form", { className: "config", novalidate: true, "data-config": id }, [
    el("strong", { text: state.form.title }),
    ...state.form.fields.map(build),
    el("div", { className: "actions" }, [
      el("button", { type: "submit", className: "primary", "data-action": "save", text: "Save" }),
      result,
    ]),
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    let unreadable = false;
    for (const editor of editors) {
      editor.setError(null);
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
    if (unreadable) return;
    if (Object.keys(changes).length === 0) {
      result.textContent = "Nothing changed.";
      result.className = "form-result";
      return;
    }
    let answer;
    try {
      answer = await symphony.call("save_config", { extension: id, changes: changes });
    } catch (error) {
      result.textContent = describe(error);
      result.className = "form-result error";
      return;
    }
    const fresh = configForm(id, answer.state);
    form.replaceWith(fresh);
    const freshEditors = fresh.editors;
    for (const [key, message] of Object.entries(answer.errors)) {
      const editor = freshEditors.find((candidate) => candidate.key === key);
      if (editor) {
        editor.setError(message);
        editor.write(changes[key]);
      }
    }
    const status = fresh.querySelector(".form-result");
    const refused = Object.keys(answer.errors).length;
    if (answer.errors[""]) {
      status.textContent = answer.errors[""];
      status.className = "form-result error";
    } else if (refused > 0) {
      status.textContent = (answer.saved.length ? "Saved " + answer.saved.join(", ") + ". " : "") + "Not saved: fix the fields marked in red.";
      status.className = "form-result error";
    } else {
      status.textContent = "Saved " + answer.saved.join(", ") + ".";
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

function fieldEditor(field, value, source, error) {
  const name = "cfg-" + field.key;
  const meta = [field.description, bounds(field), source ? "from " + source : null].filter(Boolean).join(" · ");
  const errorNode = el("span", { className: "field-error", role: "alert" });
  const control = el("div", { className: "control" });
  let read;
  let write;
  if (field.widget === "list") {
    const rows = el("div", { className: "list" });
    const addRow = (item) => {
      const input = scalarInput(field.item, item, name + "[]");
      const row = el("div", { className: "list-item" }, [input, el("button", { type: "button", className: "quiet", text: "×", "aria-label": "Remove", onclick: () => row.remove() })]);
      rows.append(row);
    };
    write = (items) => { rows.replaceChildren(); (items || []).forEach(addRow); };
    write(value);
    control.append(rows, el("button", { type: "button", className: "quiet", text: "Add", onclick: () => addRow(undefined) }));
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
      input.replaceWith(fresh);
      input = fresh;
    };
  }
  const row = el("div", { className: "field", "data-key": field.key, "data-widget": field.widget }, [
    el("label", { for: name, text: field.label + (field.required ? " *" : "") }),
    control,
    meta ? el("span", { className: "meta", text: meta }) : null,
    errorNode,
  ]);
  const firstInput = control.querySelector("input, select, textarea");
  if (firstInput) firstInput.id = name;
  const editor = {
    key: field.key,
    row: row,
    initial: field.widget === "secret" ? undefined : value,
    read: read,
    write: write,
    setError(message) {
      errorNode.textContent = message || "";
      row.classList.toggle("invalid", Boolean(message));
    },
  };
  if (error) editor.setError(error);
  return editor;
}

// Start

document.getElementById("rescan").addEventListener("click", () => load(true));
symphony.on("changed", () => {
  clearTimeout(view.pending);
  view.pending = setTimeout(() => load(false), 150);
});
load(false);
