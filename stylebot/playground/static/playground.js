// The playground's chat page: the user's side of one chat with the bot, kept in sync with the
// emulator through /api/history and the /api/events stream (server-sent events).
"use strict";

const LANG = (navigator.language || "en").toLowerCase().startsWith("ru") ? "ru" : "en";
const STRINGS = {
  en: { title: "Style bot", send: "Send", photo: "Photo", file: "File", message: "Message",
        placeholder: "Type a message or /command", history: "Chat with the bot", edited: "edited",
        online: "online", offline: "reconnecting…", typing: "bot is typing…",
        upload_photo: "bot is sending a photo…", upload_document: "bot is sending a file…", image: "Photo" },
  ru: { title: "Бот стилей", send: "Отправить", photo: "Фото", file: "Файл", message: "Сообщение",
        placeholder: "Сообщение или /команда", history: "Чат с ботом", edited: "изменено",
        online: "в сети", offline: "переподключение…", typing: "бот печатает…",
        upload_photo: "бот отправляет фото…", upload_document: "бот отправляет файл…", image: "Фото" },
}[LANG];

const list = document.getElementById("messages");
const statusLine = document.getElementById("status");
let actionTimer = null;

function translatePage() {
  document.documentElement.lang = LANG;
  document.title = STRINGS.title;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = STRINGS[el.dataset.i18n];
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = STRINGS[el.dataset.i18nPlaceholder];
  for (const el of document.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", STRINGS[el.dataset.i18nLabel]);
}

async function post(path, body, contentType = "application/json") {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": contentType }, body });
  if (!response.ok) showToast(`${response.status}: ${(await response.json()).error || ""}`);
}

function sendText(text) {
  if (text.trim()) post("/api/text", JSON.stringify({ text, lang: LANG }));
}

function upload(file, kind) {
  const query = new URLSearchParams({ kind, name: file.name, lang: LANG });
  post(`/api/upload?${query}`, file, file.type || "application/octet-stream");
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

// Build one message's element from a Telegram Message (text only through textContent: never HTML).
function renderMessage(msg) {
  const item = element("li", `msg ${msg.from_bot ? "bot" : "user"}`);
  item.dataset.id = msg.message_id;
  item.dataset.edits = msg.edits || 0;
  if (msg.photo && msg.photo.length) {
    const img = element("img");
    img.src = `/file/${encodeURIComponent(msg.photo[msg.photo.length - 1].file_id)}`;
    img.alt = msg.caption || STRINGS.image;
    img.addEventListener("load", scrollDown);
    item.append(img);
  }
  if (msg.animation) {  // plays inline as in Telegram; the same file as ``document`` is for old clients
    const gif = element("img");
    gif.src = `/file/${encodeURIComponent(msg.animation.file_id)}`;
    gif.alt = msg.caption || STRINGS.image;
    gif.addEventListener("load", scrollDown);
    item.append(gif);
  }
  if (msg.document && !msg.animation) {
    const link = element("a", "doc", `${msg.document.file_name} (${Math.ceil(msg.document.file_size / 1024)} KB)`);
    link.href = `/file/${encodeURIComponent(msg.document.file_id)}`;
    link.download = msg.document.file_name;
    item.append(link);
  }
  const text = msg.text ?? msg.caption;
  if (text) item.append(element("p", "", text));
  const rows = (msg.reply_markup && msg.reply_markup.inline_keyboard) || [];
  if (rows.length) {
    const keyboard = element("div", "keyboard");
    for (const row of rows) {
      const line = element("div", "krow");
      for (const button of row) line.append(renderButton(msg.message_id, button));
      keyboard.append(line);
    }
    item.append(keyboard);
  }
  const time = new Date((msg.edit_date || msg.date) * 1000).toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit" });
  item.append(element("div", "meta", msg.edits ? `${STRINGS.edited} ${time}` : time));
  return item;
}

function renderButton(messageId, button) {
  if (button.url) {
    const link = element("a", "", button.text);
    Object.assign(link, { href: button.url, target: "_blank", rel: "noopener" });
    return link;
  }
  const el = element("button", "", button.text);
  el.type = "button";
  el.addEventListener("click", () =>
    post("/api/button", JSON.stringify({ message_id: messageId, data: button.callback_data, lang: LANG })));
  return el;
}

// Insert or replace a message, keeping the list ordered by message_id.
function upsert(msg) {
  const old = list.querySelector(`[data-id="${msg.message_id}"]`);
  if (old && Number(old.dataset.edits) > msg.edits) return;   // a late history answer: keep the newer edit
  const fresh = renderMessage(msg);
  if (old) { old.replaceWith(fresh); return; }
  const later = [...list.children].find((el) => Number(el.dataset.id) > msg.message_id);
  list.insertBefore(fresh, later || null);
  if (msg.from_bot) clearAction();
  scrollDown();
}

function scrollDown() { list.scrollTop = list.scrollHeight; }

function showAction(action) {
  statusLine.textContent = STRINGS[action] || STRINGS.typing;
  clearTimeout(actionTimer);
  actionTimer = setTimeout(clearAction, 5000);   // Telegram shows a chat action for 5 s
}

function clearAction() { statusLine.textContent = STRINGS.online; }

function showToast(text) {
  const toast = document.getElementById("toast");
  toast.textContent = text;
  toast.hidden = false;
  setTimeout(() => { toast.hidden = true; }, 3000);
}

async function loadHistory() {
  const history = await (await fetch("/api/history")).json();
  const ids = new Set(history.map((m) => String(m.message_id)));
  for (const el of [...list.children]) if (!ids.has(el.dataset.id)) el.remove();
  history.forEach(upsert);
}

function connect() {
  const events = new EventSource("/api/events");
  events.onopen = () => { clearAction(); loadHistory(); };    // (re)connected: catch up on what we missed
  events.onerror = () => { statusLine.textContent = STRINGS.offline; };
  events.onmessage = (e) => {
    const event = JSON.parse(e.data);
    if (event.type === "message" || event.type === "edit") upsert(event.message);
    else if (event.type === "delete") list.querySelector(`[data-id="${event.message_id}"]`)?.remove();
    else if (event.type === "action") showAction(event.action);
    else if (event.type === "callback_answer" && event.text) showToast(event.text);
  };
}

function wireComposer() {
  const input = document.getElementById("text-input");
  document.getElementById("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    sendText(input.value);
    input.value = "";
    input.focus();
  });
  for (const button of document.querySelectorAll("[data-command]")) {
    button.addEventListener("click", () => sendText(button.dataset.command));
  }
  for (const [id, kind] of [["photo-input", "photo"], ["file-input", "document"]]) {
    const picker = document.getElementById(id);
    picker.addEventListener("change", () => {
      for (const file of picker.files) upload(file, kind);
      picker.value = "";
    });
  }
}

translatePage();
wireComposer();
connect();
