// Shared by every live page: the log, the event list and the cut buttons.
"use strict";
function stamp() {
  const d = new Date();
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function line(where, kind, text) {
  const box = document.getElementById(where);
  if (!box) return;
  const div = document.createElement("div");
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = stamp() + "  ";
  const body = document.createElement("span");
  body.className = kind;
  body.textContent = text;
  div.append(t, body);
  box.appendChild(div);
  box.scrollTop = box.scrollHeight;
}
function log(kind, text) { line("log", kind, text); }
function showEvent(text) { line("events", "event", text); }
document.addEventListener("click", async (e) => {
  const how = e.target.dataset && e.target.dataset.how;
  if (!how) return;
  const span = document.getElementById("cutfor").value;
  const status = document.getElementById("cutstatus");
  try {
    const r = await fetch("/api/cut?how=" + how + "&for=" + span, { method: "POST" });
    status.textContent = r.ok ? "cut (" + how + ") for " + span : "refused: " + (await r.text());
    log("info", "network cut (" + how + ") for " + span);
  } catch (err) {
    status.textContent = "cut (" + how + ") for " + span + " (the answer itself was cut)";
    log("info", "network cut (" + how + ") for " + span);
  }
});
