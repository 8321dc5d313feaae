// The household page: the same API and token as the companion. The token is entered once (or arrives in the
// pairing link's #token=...) and kept in this browser's localStorage; it goes only in the Authorization header.
"use strict";

const KEY = "edge-rap-token";
const SIGHTINGS_SHOWN = 50;
const $ = (id) => document.getElementById(id);
const fetched = new Map();  // an image's path and content -> its object URL to come, kept from one refresh to the next

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
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (e) {  // no answer at all: each browser words it its own way ("Failed to fetch", "Load failed")
    throw new Error("Cannot reach the device: check this phone's Wi-Fi, then reload the page to see what was done.");
  }
  if (response.status === 401) {
    const why = "That token was not accepted.";
    askForToken(why);
    throw new Error(why);
  }
  if (!response.ok) {
    let body = { error: response.statusText };
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    const failure = new Error(body.error);
    failure.faces = body.faces;  // a person's photo with several faces: the ones to choose from
    throw failure;
  }
  return response;
}

// An image fetched with the token, filled in when it comes, and fetched once: the lists show (and an action is
// said done) at once. Each action fetched every photo again, one after the other, before saying it was done:
// 41 concepts on a phone's slow network kept "Working..." for minutes.
function image(path, content, alt) {
  const img = document.createElement("img");
  img.alt = alt;
  const key = path + " " + content;  // (a forgotten concept's photo id may be given again to another photo)
  img.dataset.key = key;
  if (!fetched.has(key)) {
    fetched.set(key, api("GET", path).then((response) => response.blob()).then((blob) => URL.createObjectURL(blob)));
  }
  fetched.get(key).then((url) => { img.src = url; }, () => { fetched.delete(key); img.alt = alt + " (unavailable)"; });
  return img;
}

// A card's photo as the device sends it for the card (5rem high, as wide as a landscape photo), in the screen's
// pixels: the stored file was a phone's 12-megapixel photo, megabytes for each card, and a HEIC one showed nowhere
// but in Safari.
function cardPhoto(url) {
  return url + "?size=" + Math.min(2048, Math.ceil(160 * (window.devicePixelRatio || 1)));
}

// Lets go of the images the lists no longer show.
function keepImages(shown) {
  for (const [key, url] of fetched) {
    if (!shown.has(key)) { fetched.delete(key); url.then((u) => URL.revokeObjectURL(u), () => {}); }
  }
}

function askForToken(why) {
  localStorage.removeItem(KEY);
  closeFaceChoice();
  $("main").hidden = true;
  $("signout").hidden = true;
  $("token-form").hidden = false;
  say(why, Boolean(why));
}

function showConcepts(concepts) {
  const list = $("concepts");
  list.replaceChildren();
  if (!concepts.length) {
    const empty = document.createElement("li");
    empty.textContent = "Nothing yet: teach it someone above.";
    list.append(empty);
  }
  list.append(...concepts.map(card));
}

function card(c) {
  const node = $("concept-card").content.firstElementChild.cloneNode(true);
  node.dataset.name = c.name;
  node.querySelector(".name").textContent = c.name;
  node.querySelector(".category").textContent = c.category;
  node.querySelector(".description").textContent = c.description;
  node.querySelector(".photos").append(...c.photos.slice(0, 6).map((p) => image(cardPhoto(p.url), p.sha256, c.name)));
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
    }), [form.querySelector("button[type=submit]")]);
  });
  const more = node.querySelector(".more-photos");
  more.addEventListener("change", () => {
    const files = [...more.files];
    sendPhotos("Added.", files, (box) => api("POST", path + "/photos", photoForm(files, box)), [more]);
  });
  node.querySelector(".forget").addEventListener("click", (event) => {
    if (!confirm("Forget " + c.name + "? Its photos and sightings go too.")) return;
    run("Forgotten.", () => api("DELETE", path), [event.target]);
  });
  return node;
}

function midnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T00:00:00`;
}

function showEvents(events) {
  const list = $("events");
  list.replaceChildren();
  const shown = events.slice(-SIGHTINGS_SHOWN).reverse();
  for (const e of shown) {
    const item = document.createElement("li");
    const when = new Date(e.wall * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("span");
    text.textContent = `${when} ${e.name} ${e.type} (${e.camera})` + (e.said ? `: ${e.said}` : "");
    if (e.snapshot) item.append(image(e.snapshot, e.wall, e.name));
    item.append(text);
    list.append(item);
  }
  if (events.length > shown.length) {  // (only the newest are shown: a busy day's hundreds were cut without a word)
    const more = document.createElement("li");
    more.textContent = `...and ${events.length - shown.length} earlier today, not shown here ("edge-rap events" on the device lists them).`;
    list.append(more);
  }
  if (!events.length) {
    const none = document.createElement("li");
    none.textContent = "No sightings today.";
    list.append(none);
  }
}

// Both lists are asked for before either's images, which would go ahead of the second list on a slow network.
async function refresh() {
  const [concepts, events] = await Promise.all([
    api("GET", "/api/concepts").then((r) => r.json()),
    api("GET", "/api/events?since=" + encodeURIComponent(midnight())).then((r) => r.json()),
  ]);
  showConcepts(concepts);
  showEvents(events);
  keepImages(new Set([...document.querySelectorAll("img[data-key]")].map((img) => img.dataset.key)));
}

// An action, then the lists again; what it returns is said instead of `done`. The controls that started it are
// disabled meanwhile: a second tap on a slow network sent a new concept twice, and the page then said its name
// was taken.
async function run(done, action, controls = []) {
  say("Working...");
  controls.forEach((c) => { c.disabled = true; });
  try {
    const said = await action();
    await refresh();
    say(said || done);
  } catch (e) {
    say(e.message, true);
  } finally {
    controls.forEach((c) => { c.disabled = false; });
  }
}

function photoForm(files, box, fields = {}) {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  for (const f of files) form.append("photo", f, f.name);
  if (box) form.append("box", box);
  return form;
}

// Sends photos with `send(box)`. A person's photo that shows several faces comes back with their boxes: it is
// shown with a frame on each, and the one tapped is sent again as the box (a box is for every photo of a
// request, so only a photo sent on its own can be answered so).
function sendPhotos(done, files, send, controls, box = null) {
  run(done, async () => {
    try {
      await send(box);
    } catch (e) {
      if (!e.faces) throw e;
      if (files.length !== 1) throw new Error(`Photo ${e.faces.photo} shows more than one face: add it on its own to choose which.`);
      chooseFace(files[0], e.faces.boxes, (chosen) => sendPhotos(done, files, send, controls, chosen));
      return "More than one face in this photo: tap the one to remember.";
    }
  }, controls);
}

function chooseFace(file, boxes, chosen) {
  const panel = $("face-choice");
  const frame = panel.querySelector(".frame");
  const photo = document.createElement("img");
  photo.alt = file.name;
  photo.src = URL.createObjectURL(file);
  frame.replaceChildren(photo);
  const share = (part, whole) => `${(100 * part) / whole}%`;
  photo.addEventListener("load", () => {
    boxes.forEach(([x0, y0, x1, y1], k) => {
      const face = document.createElement("button");
      face.type = "button";
      face.className = "face";
      face.title = `face ${k + 1}`;
      face.setAttribute("aria-label", face.title);
      Object.assign(face.style, {
        left: share(x0, photo.naturalWidth), top: share(y0, photo.naturalHeight),
        width: share(x1 - x0, photo.naturalWidth), height: share(y1 - y0, photo.naturalHeight),
      });
      face.addEventListener("click", () => { closeFaceChoice(); chosen([x0, y0, x1, y1].join(",")); });
      frame.append(face);
    });
  }, { once: true });
  panel.hidden = false;
  panel.scrollIntoView();
}

function closeFaceChoice() {
  const photo = $("face-choice").querySelector(".frame img");
  if (photo) URL.revokeObjectURL(photo.src);
  $("face-choice").querySelector(".frame").replaceChildren();
  $("face-choice").hidden = true;
}

function chosenPhotos() { return [...$("add-camera").files, ...$("add-photos").files]; }

function showChosen() {
  const n = chosenPhotos().length;
  $("add-chosen").textContent = n ? `${n} photo${n === 1 ? "" : "s"} chosen` : "";
}

// The pairing link (edge-rap pair's QR code) carries the token after "#": browsers never send it to a server.
// It takes the place of a token this browser keeps only once the device accepts it: any web page can open a
// link with a wrong one (so can an old QR code), which replaced the good token, and the page then forgot both.
// What to say of the link ("" when none was followed), or null for none at all.
async function tokenFromLink() {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!given) return null;
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar and the history
  if (token() && given !== token()) {
    let accepted = false;
    try {
      accepted = (await fetch("/api/stats", { headers: { Authorization: "Bearer " + given } })).ok;
    } catch (e) { /* the device unreachable: the token kept is as good as before */ }
    if (!accepted) return "The pairing link's token was not accepted: this browser keeps the one it had.";
  }
  localStorage.setItem(KEY, given);
  return "";
}

// A fresh backup of the memory, saved by this browser's own download: made with the token, then fetched through a
// short-lived link that needs none (a plain link sends no token), so the file streams to disk rather than being held
// whole in the page's memory first.
async function downloadBackup() {
  const made = await (await api("POST", "/api/backup/link")).json();
  const link = document.createElement("a");
  link.href = made.url;
  link.download = made.name;
  document.body.append(link);
  link.click();
  link.remove();
  return `Backup downloading: ${made.name} (${(made.size / 1e6).toFixed(1)} MB)`;
}

async function start() {
  window.addEventListener("hashchange", async () => {
    const said = await tokenFromLink();
    if (said !== null) signedIn(said);
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY, $("token-input").value.trim());
    $("token-input").value = "";
    signedIn();
  });
  $("signout").addEventListener("click", () => askForToken("Token forgotten on this device."));
  $("add-camera").addEventListener("change", showChosen);
  $("add-photos").addEventListener("change", showChosen);
  $("ask-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData();
    form.append("question", $("ask-question").value.trim());
    const button = $("ask-form").querySelector("button[type=submit]");
    $("ask-answer").textContent = "Thinking...";
    button.disabled = true;  // (a second tap asked again, behind the first)
    try {
      const answer = await (await api("POST", "/api/ask", form)).json();
      $("ask-answer").textContent = answer.answer.replace(/<([^<>]+)>/g, "$1");  // names as the cards show them
    } catch (e) {
      $("ask-answer").textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
  $("face-cancel").addEventListener("click", () => { closeFaceChoice(); say(""); });
  $("backup").addEventListener("click", () => run("", downloadBackup, [$("backup")]));
  $("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const files = chosenPhotos();
    const fields = { name: $("add-name").value.trim(), category: $("add-category").value,
                     description: $("add-description").value };
    sendPhotos("Remembered.", files, async (box) => {
      await api("POST", "/api/concepts", photoForm(files, box, fields));
      $("add-form").reset();
      showChosen();
    }, [$("add-form").querySelector("button[type=submit]")]);
  });
  const said = await tokenFromLink();
  if (token()) signedIn(said || ""); else askForToken("");
}

function signedIn(said = "") {
  $("token-form").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = false;
  run(said, () => Promise.resolve());
}

start();
