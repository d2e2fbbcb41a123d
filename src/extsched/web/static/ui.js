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
  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) document.getElementById(opener.dataset.openDialog).showModal();
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) document.getElementById(closer.dataset.closeDialog).close();
  });

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

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.run-now");
    if (!button || button.disabled) return;
    button.disabled = true;
    button.textContent = "Running…";
    const key = window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    let started;
    try {
      started = await request(button.dataset.runUrl, {
        method: "POST",
        headers: { "Idempotency-Key": key },
      });
    } catch (err) {
      button.disabled = false;
      button.textContent = "Run now";
      toast(err.message, "error");
      return;
    }
    const history = { href: started.history_url, text: "Run history" };
    try {
      const run = await waitForRun(started.poll_url);
      if (run === null) {
        toast("The run is still waiting for a worker.", "info", history);
      } else {
        let message = "Run " + run.label.toLowerCase();
        if (run.http_status) message += " · HTTP " + run.http_status;
        if (run.duration) message += " · " + run.duration;
        if (run.error) message += " — " + run.error;
        toast(message, run.status === "succeeded" ? "ok" : "error", history);
      }
    } catch (err) {
      toast(err.message, "error", history);
    }
    if (button.dataset.standalone) {
      // On the history page the toast's link reloads the list; the button is free again.
      button.disabled = false;
      button.textContent = "Run now";
      return;
    }
    const row = button.closest("tr");
    try {
      await refreshRow(row);
    } catch (err) {
      button.disabled = false;
      button.textContent = "Run now";
    }
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

    if (zone.dataset.browserDefault) {
      const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (browserZone && zone.querySelector('option[value="' + CSS.escape(browserZone) + '"]')) {
        zone.value = browserZone;
      }
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
      } catch (err) {
        if (mine !== sequence) return;
        const fields = err.data && err.data.error && err.data.error.field_errors;
        out.className = "preview is-error";
        out.setAttribute("role", "alert");
        out.textContent = fields ? Object.values(fields).join(" ") : err.message;
        if (fields && fields.cron) cron.setAttribute("aria-invalid", "true");
      }
    }
    function schedulePreview() {
      const stale = document.getElementById("cron-error");
      if (stale) stale.remove();
      window.clearTimeout(timer);
      timer = window.setTimeout(preview, 250);
    }
    cron.addEventListener("input", schedulePreview);
    zone.addEventListener("change", preview);
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
})();
