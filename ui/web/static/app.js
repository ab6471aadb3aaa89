// Coffer management UI: progressive enhancement only; every page works
// without this script. Served from /static (the CSP forbids inline script).
"use strict";

function csrfToken() {
  return document.body.dataset.csrf || "";
}

// Buttons with data-confirm ask before their form is sent.
document.addEventListener("submit", function (ev) {
  const btn = ev.submitter;
  const msg = (btn && btn.dataset.confirm) || ev.target.dataset.confirm;
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});

// Print buttons (the recovery key page).
document.addEventListener("click", function (ev) {
  const t = ev.target.closest("[data-print]");
  if (t) {
    ev.preventDefault();
    window.print();
  }
});

function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
}

function fmtDuration(sec) {
  if (!isFinite(sec) || sec < 0) return "–";
  if (sec < 90) return Math.round(sec) + " s";
  if (sec < 5400) return Math.round(sec / 60) + " min";
  return (sec / 3600).toFixed(1) + " h";
}

// addVMRow adds a progress row for a VM the page did not know yet (the
// job had not selected its VMs when the page was made). Built with DOM
// calls and textContent only: names are never parsed as HTML.
function addVMRow(node, vm) {
  const tbody = node.querySelector("tbody[data-live-rows]");
  if (!tbody) return null;
  const empty = tbody.querySelector("[data-empty]");
  if (empty) empty.remove();
  const tr = document.createElement("tr");
  tr.dataset.vm = vm.uuid || vm.name;
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = vm.name;
  tr.appendChild(th);
  const st = document.createElement("td");
  const badge = document.createElement("span");
  badge.dataset.field = "vm-state";
  badge.className = "badge " + vm.state;
  badge.textContent = vm.state;
  st.appendChild(badge);
  tr.appendChild(st);
  const pt = document.createElement("td");
  const p = document.createElement("progress");
  p.className = "progress";
  p.max = 100;
  p.value = 0;
  p.setAttribute("aria-label", "Backup progress of " + vm.name);
  pt.appendChild(p);
  tr.appendChild(pt);
  ["pct", "speed", "eta"].forEach(function (f) {
    const td = document.createElement("td");
    td.dataset.field = f;
    td.textContent = "–";
    tr.appendChild(td);
  });
  tbody.appendChild(tr);
  return tr;
}

// Live job progress: elements with data-live-job="<job id>" (or "*" for
// every running job) are updated from the server-sent events stream.
function startLiveJobs() {
  const nodes = document.querySelectorAll("[data-live-job]");
  if (nodes.length === 0 || !window.EventSource) return;
  const es = new EventSource("/api/v1/events");
  const render = function (ev) {
    let e;
    try { e = JSON.parse(ev.data); } catch (_) { return; }
    nodes.forEach(function (node) {
      const want = node.dataset.liveJob;
      if (want === "*" && e.type === "job" && node.dataset.reloadOnNewJob !== undefined &&
          !node.querySelector('[data-job="' + CSS.escape(e.job_id) + '"]')) {
        setTimeout(function () { window.location.reload(); }, 500);
        return;
      }
      if (want !== "*" && want !== e.job_id) return;
      if (e.job_state) {
        const st = node.querySelector("[data-field=state]");
        if (st) { st.textContent = e.job_state; st.className = "badge " + e.job_state; }
        if (["succeeded", "warning", "failed", "interrupted", "canceled"].indexOf(e.job_state) >= 0 && node.dataset.reloadOnEnd !== undefined) {
          setTimeout(function () { window.location.reload(); }, 800);
        }
      }
      if (e.vm) {
        let row = node.querySelector('[data-vm="' + CSS.escape(e.vm.uuid || e.vm.name) + '"]');
        if (!row) row = addVMRow(node, e.vm);
        if (row) {
          const s = row.querySelector("[data-field=vm-state]");
          if (s) { s.textContent = e.vm.state; s.className = "badge " + e.vm.state; }
          const p = row.querySelector("progress");
          const pr = e.vm.progress;
          if (p && pr) {
            p.max = 100; p.value = pr.percent;
            const pct = row.querySelector("[data-field=pct]");
            if (pct) pct.textContent = Math.floor(pr.percent) + " %";
            const sp = row.querySelector("[data-field=speed]");
            if (sp && pr.throughput) sp.textContent = fmtBytes(pr.throughput) + "/s";
            const eta = row.querySelector("[data-field=eta]");
            if (eta && pr.eta > 0) eta.textContent = fmtDuration(pr.eta / 1e9);
          }
        }
      }
    });
  };
  ["job", "vm", "progress"].forEach(function (t) { es.addEventListener(t, render); });
}

// After a rejected form, put the keyboard on the first marked field.
function focusFirstError() {
  const bad = document.querySelector('[aria-invalid="true"]');
  if (bad && typeof bad.focus === "function") bad.focus();
}

document.addEventListener("DOMContentLoaded", startLiveJobs);
document.addEventListener("DOMContentLoaded", focusFirstError);
