// The household page: the same API and token as the companion. The token is entered once (or arrives in the
// pairing link's #token=...) and kept in this browser's localStorage; it goes only in the Authorization header.
"use strict";

const KEY = "edge-rap-token";
const $ = (id) => document.getElementById(id);
let objectUrls = [];

function token() { return localStorage.getItem(KEY); }

function say(text, isError) {
  $("status").textContent = text || "";
  $("status").className = isError ? "error" : "";
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body });
  if (response.status === 401) {
    const why = "That token was not accepted.";
    askForToken(why);
    throw new Error(why);
  }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

async function image(path, alt) {
  const img = document.createElement("img");
  img.alt = alt;
  try {
    const blob = await (await api("GET", path)).blob();
    img.src = URL.createObjectURL(blob);
    objectUrls.push(img.src);
  } catch (e) { img.alt = alt + " (unavailable)"; }
  return img;
}

function askForToken(why) {
  localStorage.removeItem(KEY);
  $("main").hidden = true;
  $("signout").hidden = true;
  $("token-form").hidden = false;
  say(why, Boolean(why));
}

async function showConcepts() {
  const concepts = await (await api("GET", "/api/concepts")).json();
  objectUrls.forEach((u) => URL.revokeObjectURL(u));
  objectUrls = [];
  const list = $("concepts");
  list.replaceChildren();
  if (!concepts.length) {
    const empty = document.createElement("li");
    empty.textContent = "Nothing yet: teach it someone above.";
    list.append(empty);
  }
  for (const c of concepts) list.append(await card(c));
}

async function card(c) {
  const node = $("concept-card").content.firstElementChild.cloneNode(true);
  node.dataset.name = c.name;
  node.querySelector(".name").textContent = c.name;
  node.querySelector(".category").textContent = c.category;
  node.querySelector(".description").textContent = c.description;
  for (const p of c.photos.slice(0, 6)) node.querySelector(".photos").append(await image(p.url, c.name));
  const form = node.querySelector(".edit-form");
  const path = "/api/concepts/" + encodeURIComponent(c.name);
  node.querySelector(".edit").addEventListener("click", () => {
    form.querySelector(".edit-name").value = c.name;
    form.querySelector(".edit-category").value = c.category;
    form.querySelector(".edit-description").value = c.description;
    form.hidden = false;
  });
  node.querySelector(".cancel").addEventListener("click", () => { form.hidden = true; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run("Saved.", () => api("PATCH", path, {
      name: form.querySelector(".edit-name").value.trim(),
      category: form.querySelector(".edit-category").value,
      description: form.querySelector(".edit-description").value,
    }));
  });
  node.querySelector(".forget").addEventListener("click", () => {
    if (confirm("Forget " + c.name + "? Its photos and sightings go too.")) run("Forgotten.", () => api("DELETE", path));
  });
  return node;
}

function midnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T00:00:00`;
}

async function showEvents() {
  const events = await (await api("GET", "/api/events?since=" + encodeURIComponent(midnight()))).json();
  const list = $("events");
  list.replaceChildren();
  for (const e of events.slice(-50).reverse()) {
    const item = document.createElement("li");
    const when = new Date(e.wall * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("span");
    text.textContent = `${when} ${e.name} ${e.type} (${e.camera})` + (e.said ? `: ${e.said}` : "");
    if (e.snapshot) item.append(await image(e.snapshot, e.name));
    item.append(text);
    list.append(item);
  }
  if (!events.length) {
    const none = document.createElement("li");
    none.textContent = "No sightings today.";
    list.append(none);
  }
}

async function refresh() { await showConcepts(); await showEvents(); }

async function run(done, action) {
  say("Working...");
  try {
    await action();
    await refresh();
    say(done);
  } catch (e) {
    say(e.message, true);
  }
}

function chosenPhotos() { return [...$("add-camera").files, ...$("add-photos").files]; }

function showChosen() {
  const n = chosenPhotos().length;
  $("add-chosen").textContent = n ? `${n} photo(s) chosen` : "";
}

// The pairing link (edge-rap pair's QR code) carries the token after "#": browsers never send it to a server.
function tokenFromLink() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.get("token")) return false;
  localStorage.setItem(KEY, fragment.get("token"));
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar and the history
  return true;
}

function start() {
  tokenFromLink();
  window.addEventListener("hashchange", () => { if (tokenFromLink()) signedIn(); });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY, $("token-input").value.trim());
    $("token-input").value = "";
    signedIn();
  });
  $("signout").addEventListener("click", () => askForToken("Token forgotten on this device."));
  $("add-camera").addEventListener("change", showChosen);
  $("add-photos").addEventListener("change", showChosen);
  $("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData();
    form.append("name", $("add-name").value.trim());
    form.append("category", $("add-category").value);
    form.append("description", $("add-description").value);
    for (const f of chosenPhotos()) form.append("photo", f, f.name);
    run("Remembered.", async () => {
      await api("POST", "/api/concepts", form);
      $("add-form").reset();
      showChosen();
    });
  });
  if (token()) signedIn(); else askForToken("");
}

function signedIn() {
  $("token-form").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = false;
  run("", () => Promise.resolve());
}

start();
