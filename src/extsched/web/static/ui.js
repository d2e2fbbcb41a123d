// extsched web UI: small progressive enhancements on server-rendered pages.
// Every state change still goes through the server, which checks the CSRF token sent here.
(function () {
  "use strict";

  const csrfToken = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  // ------------------------------------------------------------------ requests
  async function request(url, options) {
    const opts = options || {};
    const method = opts.method || "GET";
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
    let response;
    try {
      response = await fetch(url, {
        method: method,
        headers: headers,
        body: opts.body || null,
        credentials: "same-origin",
      });
    } catch (err) {
      throw new Error("The service cannot be reached; check your connection and try again.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (response.status === 401) {
      window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname));
    }
    if (!response.ok) {
      const message =
        (data && data.error && data.error.message) || "Request failed (HTTP " + response.status + ").";
      const error = new Error(message);
      error.data = data;
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // ------------------------------------------------------------------ toasts
  function toast(message, kind, link, timeoutMs) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = "toast toast-" + (kind || "info");
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    const text = document.createElement("span");
    text.textContent = message;
    el.append(text);
    if (link) {
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      el.append(a);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => el.remove());
    el.append(close);
    box.append(el);
    while (box.children.length > 4) box.firstElementChild.remove();
    window.setTimeout(() => el.remove(), timeoutMs || (kind === "error" ? 20000 : 12000));
  }

  // ------------------------------------------------------------------ confirmations
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm || event.defaultPrevented) return;
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return; // plain submit
    event.preventDefault();
    document.getElementById("confirm-title").textContent = form.dataset.confirm;
    document.getElementById("confirm-detail").textContent = form.dataset.confirmDetail || "";
    document.getElementById("confirm-ok").textContent = form.dataset.confirmAction || "Confirm";
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "ok") form.submit();
      },
      { once: true }
    );
    dialog.showModal();
  });

  document.querySelectorAll("dialog[data-open-on-load]").forEach((d) => d.showModal());

  // Tabs scroll sideways on narrow screens: show the current one.
  document.querySelectorAll(".tabs").forEach((tabs) => {
    const current = tabs.querySelector('[aria-current="page"]');
    if (current && tabs.scrollWidth > tabs.clientWidth) {
      tabs.scrollLeft = current.offsetLeft - (tabs.clientWidth - current.offsetWidth) / 2;
    }
  });
  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) document.getElementById(opener.dataset.openDialog).showModal();
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) document.getElementById(closer.dataset.closeDialog).close();
  });

  // ------------------------------------------------------------------ refused forms
  // The server marks the fields it refused; changing a field clears its mark, and the
  // banner above the form goes once no marked field is left. (Capture phase: the form's own
  // checks, which may mark the field again, run after this.)
  function clearFieldError(event) {
    const field = event.target;
    if (!(field instanceof HTMLElement) || !field.form) return;
    const error = document.getElementById((field.id || field.name) + "-error");
    if (!error || !error.classList.contains("field-error") || error.dataset.scriptOwned) return;
    error.remove();
    field.removeAttribute("aria-invalid");
    const described = (field.getAttribute("aria-describedby") || "")
      .split(/\s+/)
      .filter((id) => id && id !== error.id);
    if (described.length) field.setAttribute("aria-describedby", described.join(" "));
    else field.removeAttribute("aria-describedby");
    const banner = field.form.parentElement.querySelector("[data-field-errors]");
    if (banner && !field.form.querySelector(".field-error")) banner.remove();
  }
  document.addEventListener("input", clearFieldError, true);
  document.addEventListener("change", clearFieldError, true);

  // ------------------------------------------------------------------ schedule rows
  function replaceRow(row, html) {
    const holder = document.createElement("tbody");
    holder.innerHTML = html.trim();
    const fresh = holder.firstElementChild;
    row.replaceWith(fresh);
    watchBusy(fresh);
    return fresh;
  }

  async function refreshRow(row) {
    if (!row || !row.dataset.rowUrl) return row;
    const data = await request(row.dataset.rowUrl);
    return replaceRow(row, data.html);
  }

  // A row rendered while a run is queued or running refreshes itself until the run ends.
  function watchBusy(row) {
    const button = row.querySelector("button.run-now");
    if (!button || !button.disabled || !row.dataset.rowUrl) return;
    window.setTimeout(async () => {
      if (!row.isConnected) return;
      try {
        await refreshRow(row);
      } catch (err) {
        /* the next page load shows the state */
      }
    }, 2000);
  }
  document.querySelectorAll("tr[data-row-url]").forEach(watchBusy);

  document.addEventListener("change", async (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.dataset.toggleUrl) return;
    const row = input.closest("tr");
    const label = input.closest(".switch");
    label.classList.add("pending");
    input.disabled = true;
    const body = new URLSearchParams({
      enabled: input.checked ? "true" : "false",
      revision: input.dataset.revision,
    });
    try {
      const data = await request(input.dataset.toggleUrl, { method: "POST", body: body });
      const fresh = replaceRow(row, data.html);
      const again = fresh.querySelector("input[data-toggle-url]");
      if (again) again.focus();
      toast(data.message, "ok");
    } catch (err) {
      input.checked = !input.checked;
      label.classList.remove("pending");
      input.disabled = false;
      if (err.data && err.data.html) replaceRow(row, err.data.html);
      toast(err.message, "error");
    }
  });

  // ------------------------------------------------------------------ run now
  const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  async function waitForRun(url) {
    let delay = 400;
    for (let i = 0; i < 120; i++) {
      const run = await request(url);
      if (run.terminal) return run;
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
    }
    return null;
  }

  // The visible words change; the schedule's name (for screen readers) stays.
  function runText(button, text) {
    (button.querySelector(".run-text") || button).textContent = text;
  }

  const newKey = () =>
    window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();

  // Follows a started run until it ends and says how it went ("Run failed · HTTP 500 — …").
  async function reportRun(started, what) {
    const history = { href: started.history_url, text: "Run history" };
    try {
      const run = await waitForRun(started.poll_url);
      if (run === null) {
        toast("The " + what.toLowerCase() + " is still waiting for a worker.", "info", history);
      } else {
        let message = what + " " + run.label.toLowerCase();
        if (run.http_status) message += " · HTTP " + run.http_status;
        if (run.duration) message += " · " + run.duration;
        if (run.error) message += " — " + run.error;
        toast(message, run.status === "succeeded" ? "ok" : "error", history);
      }
    } catch (err) {
      toast(err.message, "error", history);
    }
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.run-now");
    if (!button || button.disabled) return;
    button.disabled = true;
    runText(button, "Running…");
    let started;
    try {
      started = await request(button.dataset.runUrl, {
        method: "POST",
        headers: { "Idempotency-Key": newKey() },
      });
    } catch (err) {
      button.disabled = false;
      runText(button, "Run now");
      toast(err.message, "error");
      return;
    }
    await reportRun(started, "Run");
    if (button.dataset.standalone) {
      // On the history page the toast's link reloads the list; the button is free again.
      button.disabled = false;
      runText(button, "Run now");
      return;
    }
    const row = button.closest("tr");
    try {
      await refreshRow(row);
    } catch (err) {
      button.disabled = false;
      runText(button, "Run now");
    }
  });

  // ------------------------------------------------------------------ replay
  // A failed or timed-out run runs again for its original time (a new row in the history).
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.replay");
    if (!button || button.disabled) return;
    button.disabled = true;
    button.textContent = "Replaying…";
    try {
      const started = await request(button.dataset.replayUrl, { method: "POST" });
      await reportRun(started, "Replay");
    } catch (err) {
      toast(err.message, "error");
    }
    button.disabled = false;
    button.textContent = "Replay";
  });

  // ------------------------------------------------------------------ run with a payload
  const payloadForm = document.getElementById("payload-form");
  if (payloadForm) setUpPayloadDialog(payloadForm);

  function setUpPayloadDialog(form) {
    const dialog = form.closest("dialog");
    const area = form.querySelector("textarea");
    const error = document.getElementById(area.id + "-error");
    const submit = form.querySelector('button[type="submit"]');
    const hint = area.getAttribute("aria-describedby");
    let key = newKey(); // one key per payload sent: a double click starts one run

    function showError(message) {
      error.textContent = message;
      error.hidden = !message;
      if (message) {
        area.setAttribute("aria-invalid", "true");
        area.setAttribute("aria-describedby", hint + " " + error.id);
      } else {
        area.removeAttribute("aria-invalid");
        area.setAttribute("aria-describedby", hint);
      }
    }
    area.addEventListener("input", () => {
      showError("");
      key = newKey();
    });
    dialog.addEventListener("close", () => showError(""));

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = area.value.trim();
      if (text) {
        try {
          JSON.parse(text);
        } catch (err) {
          showError("Invalid JSON: " + err.message);
          area.focus();
          return;
        }
      }
      submit.disabled = true;
      let started;
      try {
        started = await request(form.dataset.runUrl, {
          method: "POST",
          headers: { "Idempotency-Key": key },
          body: new URLSearchParams({ payload: area.value }),
        });
      } catch (err) {
        const fields = err.data && err.data.error && err.data.error.field_errors;
        showError(fields && fields.payload ? "The payload " + fields.payload : err.message);
        area.focus();
        return;
      } finally {
        submit.disabled = false;
      }
      key = newKey();
      dialog.close();
      await reportRun(started, "Run");
    });
  }

  // ------------------------------------------------------------------ pause until
  // One dialog per page; the row's "Pause…" button says which schedule it pauses.
  document.addEventListener("click", (event) => {
    const opener = event.target.closest("button.pause-open");
    const dialog = document.getElementById("pause-dialog");
    if (!opener || !dialog) return;
    const form = dialog.querySelector("form");
    form.action = opener.dataset.pauseUrl;
    document.getElementById("pause-name").textContent = opener.dataset.pauseName;
    dialog.showModal();
  });

  // ------------------------------------------------------------------ copy buttons
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.copy");
    if (!button) return;
    try {
      await copyText(button.dataset.copy);
      button.textContent = "Copied";
      toast("Copied to the clipboard.", "ok", null, 3000);
      window.setTimeout(() => {
        button.textContent = "Copy";
      }, 2000);
    } catch (err) {
      toast("Could not copy: " + err.message, "error");
    }
  });

  // ------------------------------------------------------------------ time-zone picker
  // The server renders a <select> of canonical zones (and a <template> of every other name
  // the time engine accepts). Here it becomes a searchable combobox: "new y" finds
  // America/New_York; other names (US/Eastern, Asia/Calcutta, Etc/GMT+5) appear only when
  // typed exactly. The <select> stays the form's field, so the server sees the same value.
  const words = (text) =>
    text
      .toLowerCase()
      .replace(/[_/]+/g, " ")
      .split(/\s+/)
      .filter(Boolean);

  function zonePicker(select) {
    const zones = [];
    const byName = new Map();
    function add(option, canonical) {
      if (byName.has(option.value)) return;
      const z = {
        name: option.value,
        offset: option.dataset.offset || "",
        note: option.dataset.note || "",
        canonical: canonical,
      };
      z.words = words(z.name).concat(z.offset ? [z.offset.toLowerCase()] : []);
      z.city = words(z.name.split("/").pop()).join(" ");
      zones.push(z);
      byName.set(z.name, z);
    }
    Array.from(select.options).forEach((o) => add(o, !o.dataset.note && !!o.dataset.offset));
    const others = document.getElementById("timezone-others");
    if (others) others.content.querySelectorAll("option").forEach((o) => add(o, false));
    const lower = new Map(zones.map((z) => [z.name.toLowerCase(), z]));

    const label = document.querySelector('label[for="' + select.id + '"]');
    const box = document.createElement("div");
    box.className = "tz-picker";
    const input = document.createElement("input");
    input.type = "text";
    input.id = select.id + "-input";
    input.className = "tz-input";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", select.id + "-listbox");
    input.autocomplete = "off";
    input.spellcheck = false;
    input.placeholder = "Type a city or region, e.g. New York";
    ["aria-describedby", "aria-invalid"].forEach((a) => {
      if (select.hasAttribute(a)) input.setAttribute(a, select.getAttribute(a));
    });
    const offset = document.createElement("span");
    offset.className = "tz-offset muted small";
    offset.id = select.id + "-offset";
    input.setAttribute(
      "aria-describedby",
      (offset.id + " " + (input.getAttribute("aria-describedby") || "")).trim()
    );
    const list = document.createElement("ul");
    list.id = select.id + "-listbox";
    list.className = "tz-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Zone suggestions");
    list.hidden = true;
    const status = document.createElement("p");
    status.className = "tz-status small muted";
    status.setAttribute("aria-live", "polite");
    box.append(input, offset, list, status);
    select.after(box);
    select.hidden = true;
    select.tabIndex = -1;
    if (label) label.htmlFor = input.id;

    let shown = [];
    let active = -1;

    function describe(z) {
      return z ? z.offset + (z.note ? " · " + z.note : "") : "";
    }

    function matches(query) {
      const q = query.trim();
      if (!q) return zones.filter((z) => z.canonical);
      const exact = lower.get(q.toLowerCase());
      const terms = words(q);
      const joined = terms.join(" ");
      const found = [];
      zones.forEach((z) => {
        let rank = null;
        if (z === exact) rank = 0;
        else if (!z.canonical) return; // other names only when typed exactly
        else if (z.city.startsWith(joined)) rank = 1;
        else if (terms.every((t) => z.words.some((w) => w.startsWith(t)))) rank = 2;
        else if (z.words.join(" ").includes(joined)) rank = 3;
        if (rank !== null) found.push({ z: z, rank: rank });
      });
      found.sort((a, b) => a.rank - b.rank || a.z.name.localeCompare(b.z.name));
      return found.map((f) => f.z);
    }

    function setActive(index) {
      const items = list.children;
      if (active >= 0 && items[active]) items[active].setAttribute("aria-selected", "false");
      active = index;
      if (active >= 0 && items[active]) {
        items[active].setAttribute("aria-selected", "true");
        input.setAttribute("aria-activedescendant", items[active].id);
        items[active].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function open(query) {
      shown = matches(query);
      list.replaceChildren(
        ...shown.map((z, i) => {
          const li = document.createElement("li");
          li.id = select.id + "-option-" + i;
          li.setAttribute("role", "option");
          li.setAttribute("aria-selected", "false");
          li.dataset.zone = z.name;
          const name = document.createElement("span");
          name.className = "tz-name";
          name.textContent = z.name;
          const detail = document.createElement("span");
          detail.className = "tz-detail";
          detail.textContent = describe(z);
          li.append(name, " ", detail);
          return li;
        })
      );
      list.hidden = shown.length === 0;
      input.setAttribute("aria-expanded", shown.length ? "true" : "false");
      status.textContent = shown.length
        ? query.trim()
          ? shown.length + (shown.length === 1 ? " time zone matches." : " time zones match.")
          : ""
        : "No time zone matches “" + query.trim() + "”.";
      const current = shown.findIndex((z) => z.name === select.value);
      setActive(query.trim() ? 0 : current);
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      setActive(-1);
      status.textContent = "";
    }

    // Puts ``name`` into the field (adding an option for an other name); false if unknown.
    function choose(name, notify) {
      const z = byName.get(name) || lower.get(String(name).toLowerCase());
      if (!z) return false;
      if (!Array.from(select.options).some((o) => o.value === z.name)) {
        const option = document.createElement("option");
        option.value = z.name;
        option.textContent = z.name;
        select.append(option);
      }
      const changed = select.value !== z.name;
      select.value = z.name;
      input.value = z.name;
      offset.textContent = describe(z);
      input.removeAttribute("aria-invalid");
      close();
      if (changed && notify !== false) select.dispatchEvent(new Event("change", { bubbles: true }));
      const described = (input.getAttribute("aria-describedby") || "")
        .split(/\s+/)
        .filter((id) => id && document.getElementById(id));
      input.setAttribute("aria-describedby", described.join(" "));
      return true;
    }

    function restore() {
      input.value = select.value;
      offset.textContent = describe(byName.get(select.value));
    }

    input.addEventListener("focus", () => input.select());
    input.addEventListener("click", () => {
      if (list.hidden) open("");
    });
    input.addEventListener("input", () => open(input.value));
    input.addEventListener("keydown", (event) => {
      const isOpen = !list.hidden;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (!isOpen) {
          open("");
          return;
        }
        const step = event.key === "ArrowDown" ? 1 : -1;
        setActive(Math.max(0, Math.min(shown.length - 1, active + step)));
      } else if (event.key === "Enter") {
        if (isOpen && shown[active]) {
          event.preventDefault();
          choose(shown[active].name);
        } else if (isOpen || input.value !== select.value) {
          event.preventDefault();
          if (!choose(input.value.trim())) open(input.value);
        }
      } else if (event.key === "Escape") {
        if (isOpen) {
          event.preventDefault();
          close();
        }
        restore();
      } else if (event.key === "Tab" && isOpen && shown[active] && input.value !== select.value) {
        choose(shown[active].name);
      }
    });
    input.addEventListener("blur", () => {
      if (!choose(input.value.trim())) restore();
      close();
    });
    list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus
    list.addEventListener("click", (event) => {
      const li = event.target.closest("li[data-zone]");
      if (li) choose(li.dataset.zone);
    });

    restore();
    return { choose: choose };
  }

  // ------------------------------------------------------------------ schedule form
  const form = document.getElementById("schedule-form");
  if (form) setUpScheduleForm(form);

  function setUpScheduleForm(form) {
    const cron = form.querySelector("#cron");
    const zone = form.querySelector("#timezone");
    const out = document.getElementById("cron-preview");
    const payload = form.querySelector("#payload");
    const payloadStatus = document.getElementById("payload-status");
    const endpoint = form.querySelector("#endpoint_id");
    const endpointWarning = document.getElementById("endpoint-warning");

    const picker = zonePicker(zone);
    if (zone.dataset.browserDefault) {
      const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (browserZone) picker.choose(browserZone, false);
    }

    // Live cron check: the same validation and time engine as the API, via /ui/cron-preview.
    let timer = null;
    let sequence = 0;
    async function preview() {
      const expr = cron.value.trim();
      const mine = ++sequence;
      if (!expr) {
        out.className = "preview";
        out.replaceChildren();
        return;
      }
      out.className = "preview is-loading";
      out.textContent = "Checking…";
      const query = new URLSearchParams({ cron: expr, timezone: zone.value });
      const dstSet = document.getElementById("dst-fields");
      if (dstSet && !dstSet.disabled) {
        ["dst_gap", "dst_repeat"].forEach((name) => {
          const field = form.elements.namedItem(name);
          if (field && field.value) query.set(name, field.value);
        });
      }
      try {
        const data = await request(form.dataset.previewUrl + "?" + query.toString());
        if (mine !== sequence) return;
        cron.removeAttribute("aria-invalid");
        out.className = "preview is-valid";
        const desc = document.createElement("div");
        desc.className = "desc";
        desc.textContent = data.description;
        const caption = document.createElement("div");
        caption.className = "small muted";
        caption.textContent = "Next 5 runs (" + data.timezone + "):";
        const list = document.createElement("ol");
        data.next_runs.forEach((fire) => {
          const li = document.createElement("li");
          const time = document.createElement("time");
          time.dateTime = fire.at;
          time.title = fire.utc;
          time.textContent = fire.local;
          li.append(time);
          if (fire.viewer) {
            const yours = document.createElement("span");
            yours.className = "muted small";
            yours.textContent = " (your time: " + fire.viewer + ")";
            li.append(yours);
          }
          if (fire.note) {
            const note = document.createElement("span");
            note.className = "dst-note";
            note.textContent = "DST: " + fire.note;
            li.append(" ", note);
          }
          list.append(li);
        });
        out.replaceChildren(desc, caption, list);
        if (data.dst_fires && data.dst_fires.length) {
          // A daily schedule's next 5 runs rarely reach a clock change: show the next ones.
          const dstCaption = document.createElement("div");
          dstCaption.className = "small muted";
          dstCaption.textContent = "Next clock changes that affect it:";
          const dstList = document.createElement("ul");
          dstList.className = "dst-fires";
          dstList.dataset.testid = "dst-fires";
          data.dst_fires.forEach((fire) => {
            const li = document.createElement("li");
            const time = document.createElement("time");
            time.dateTime = fire.at;
            time.textContent = fire.local;
            const note = document.createElement("span");
            note.className = "dst-note";
            note.textContent = fire.note;
            li.append(time, " ", note);
            dstList.append(li);
          });
          out.append(dstCaption, dstList);
        }
        setFixedTime(data.fixed_time);
      } catch (err) {
        if (mine !== sequence) return;
        const fields = err.data && err.data.error && err.data.error.field_errors;
        out.className = "preview is-error";
        out.setAttribute("role", "alert");
        out.textContent = fields ? Object.values(fields).join(" ") : err.message;
        if (fields && fields.cron) cron.setAttribute("aria-invalid", "true");
      }
    }
    // The DST choices apply to fixed-time schedules only; for others they are switched off
    // (and so not sent: the default). The server has the last word either way.
    const dst = document.getElementById("dst-fields");
    const dstOff = document.getElementById("dst-off");
    function setFixedTime(fixed) {
      if (!dst) return;
      dst.disabled = !fixed;
      dstOff.hidden = fixed;
    }

    function schedulePreview() {
      const stale = document.getElementById("cron-error");
      if (stale) stale.remove();
      window.clearTimeout(timer);
      timer = window.setTimeout(preview, 250);
    }
    cron.addEventListener("input", schedulePreview);
    zone.addEventListener("change", preview);
    ["dst_gap", "dst_repeat"].forEach((name) => {
      const field = form.elements.namedItem(name);
      if (field) field.addEventListener("change", preview);
    });
    form.querySelectorAll("button[data-preset]").forEach((button) => {
      button.addEventListener("click", () => {
        cron.value = button.dataset.preset;
        schedulePreview();
        cron.focus();
      });
    });
    if (cron.value.trim() && !document.getElementById("cron-error")) preview();

    // The payload must be JSON before it is sent.
    function checkPayload() {
      const text = payload.value.trim();
      if (!text) {
        payloadStatus.textContent = "";
        payload.removeAttribute("aria-invalid");
        return true;
      }
      try {
        JSON.parse(text);
        payloadStatus.textContent = "Valid JSON";
        payloadStatus.className = "small payload-ok";
        payload.removeAttribute("aria-invalid");
        return true;
      } catch (err) {
        payloadStatus.textContent = "Invalid JSON: " + err.message;
        payloadStatus.className = "small payload-bad";
        payload.setAttribute("aria-invalid", "true");
        return false;
      }
    }
    payload.addEventListener("input", checkPayload);
    document.getElementById("payload-format").addEventListener("click", () => {
      if (checkPayload() && payload.value.trim()) {
        payload.value = JSON.stringify(JSON.parse(payload.value), null, 2);
      }
    });
    form.addEventListener("submit", (event) => {
      if (!checkPayload()) {
        event.preventDefault();
        payload.focus();
        toast("The payload is not valid JSON; fix it before saving.", "error");
      }
    });
    if (payload.value.trim()) checkPayload();

    // Changing what an existing schedule calls deserves a second look.
    if (endpoint && endpointWarning && endpoint.dataset.original) {
      endpoint.addEventListener("change", () => {
        endpointWarning.hidden = endpoint.value === endpoint.dataset.original;
      });
    }
  }

  // ------------------------------------------------------------------ install dialog
  // Show the default schedules of the version picked (without JS, every version's show).
  document.querySelectorAll("form .default-schedules").forEach((box) => {
    const select = box.closest("form").querySelector("select[name=version_id]");
    const check = box.querySelector("input[name=default_schedules]");
    if (!select) return;
    const show = () => {
      let any = false;
      box.querySelectorAll("[data-version]").forEach((el) => {
        el.hidden = el.dataset.version !== select.value;
        any = any || !el.hidden;
      });
      if (check) check.closest(".check").hidden = !any;
    };
    select.addEventListener("change", show);
    show();
  });
})();
