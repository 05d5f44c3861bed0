// The sandbox page: a small Telegram client for simulated users, fed by /api/events.
//
// Every piece of text that comes from the bot or a user is put on the page as text (DOM nodes,
// textContent), never parsed as HTML: the bot's messages are data, not markup.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  // --- building DOM without HTML strings ------------------------------------------------------

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child); // strings become text nodes
    }
    return el;
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function link(url, label) {
    const href = safeUrl(url);
    if (!href) return document.createTextNode(label);
    return h("a", { href, target: "_blank", rel: "noopener noreferrer" }, label);
  }

  // --- model ----------------------------------------------------------------------------------

  const model = { appName: "", bot: null, users: new Map(), chats: new Map(), outbox: [] };
  const ui = {
    userId: null,
    chatKey: null,
    keyboardOpen: true,
    seen: new Map(), // "user|chat" -> newest message id that user has had on screen
    typing: new Map(), // chat key -> time the "typing…" status ends
    nodes: new Map(), // "chat:message" -> {sig, node}: unchanged messages keep their node
    freshOutbox: new Set(),
  };

  function privateChatKey(userId) {
    return model.bot ? `${model.bot.id}/${userId}` : null;
  }

  // A user the bot has never seen still has the bot in the chat list, with a Start button.
  function ensurePrivateChat(userId) {
    const key = privateChatKey(userId);
    if (key && !model.chats.has(key)) {
      model.chats.set(key, {
        key, id: userId, bot_id: model.bot.id, type: "private", title: model.bot.first_name,
        username: model.bot.username, members: [userId], opened: false, keyboard: null,
        messages: [],
      });
    }
  }

  // Every group and channel is listed for every user, as if each had its link: one who is not
  // in it sees a Join button instead of the input field.
  function chatsOf(userId) {
    return [...model.chats.values()]
      .filter((chat) => !isPrivate(chat) || chat.members.includes(userId))
      .sort((a, b) => lastDate(b) - lastDate(a));
  }

  function isPrivate(chat) {
    return chat.type === "private";
  }

  // The current user's standing in a group or channel, as the server keeps it.
  function standing(chat, userId = ui.userId) {
    return (chat.people || []).find((p) => p.id === userId)
      || { id: userId, status: "left", in_chat: false, is_admin: false, can_write: false, asked: false };
  }

  // t.me links that start a bot: the app opens that bot's chat instead of a web page.
  const BOT_LINK = /^https:\/\/t\.me\/[A-Za-z0-9_]{3,32}\?start=[A-Za-z0-9_-]{0,64}$/;

  function lastDate(chat) {
    const last = chat.messages[chat.messages.length - 1];
    return last ? last.date : 0;
  }

  function upsertMessage(chat, message) {
    const i = chat.messages.findIndex((m) => m.id === message.id);
    if (i >= 0) chat.messages[i] = message;
    else {
      chat.messages.push(message);
      chat.messages.sort((a, b) => a.id - b.id);
    }
  }

  function apply(event) {
    switch (event.type) {
      case "state":
        model.appName = event.app_name;
        model.bot = event.bot;
        model.users = new Map(event.users.map((u) => [u.id, u]));
        model.chats = new Map(event.chats.map((c) => [c.key, c]));
        model.outbox = event.outbox;
        for (const id of model.users.keys()) ensurePrivateChat(id);
        if (!model.users.has(ui.userId)) {
          const wanted = userFromHash();
          selectUser(model.users.has(wanted) ? wanted : event.users[0]?.id, false);
        }
        renderAll();
        break;
      case "user":
        model.users.set(event.user.id, event.user);
        ensurePrivateChat(event.user.id);
        renderAccounts();
        break;
      case "message": {
        const meta = event.chat;
        const chat = model.chats.get(meta.key) || { ...meta, messages: [] };
        Object.assign(chat, meta, { messages: chat.messages });
        model.chats.set(meta.key, chat);
        upsertMessage(chat, event.message);
        if (event.message.from_bot) ui.typing.delete(chat.key);
        if (chat.key === ui.chatKey) renderConversation();
        renderChatList();
        break;
      }
      case "chat": {
        const chat = model.chats.get(event.chat.key) || { messages: [] };
        model.chats.set(event.chat.key, Object.assign(chat, event.chat, { messages: chat.messages }));
        if (event.chat.key === ui.chatKey) renderConversation();
        renderChatList();
        break;
      }
      case "keyboard": {
        const chat = model.chats.get(event.chat);
        if (!chat) break;
        chat.keyboard = event.keyboard;
        if (event.keyboard) ui.keyboardOpen = true;
        if (chat.key === ui.chatKey) renderComposer();
        break;
      }
      case "chat_action":
        if (event.action === "typing") {
          ui.typing.set(event.chat, Date.now() + 5000);
          setTimeout(renderHeader, 5100);
          renderHeader();
        }
        break;
      case "outbox":
        model.outbox.push(event.entry);
        ui.freshOutbox.add(event.entry.id);
        renderOutbox();
        break;
    }
  }

  // --- talking to the sandbox -----------------------------------------------------------------

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `The sandbox answered ${response.status}`);
    return data;
  }

  async function send(body) {
    try {
      return await post(`/api/users/${ui.userId}/send`, body);
    } catch (error) {
      toast(error.message, true);
      return null;
    }
  }

  function sendText(text) {
    const chat = model.chats.get(ui.chatKey);
    return send(chat && !isPrivate(chat) ? { chat: chat.id, text } : { text });
  }

  // A URL button that starts the bot: its private chat opens with /start PAYLOAD sent.
  async function openBotLink(chat, messageId, button, element) {
    element.disabled = true;
    const where = isPrivate(chat) ? null : chat.id;
    const result = await send({ open: { chat: where, message_id: messageId, text: button.text } });
    element.disabled = false;
    if (result) selectChat(result.chat);
  }

  async function chatAction(chat, action) {
    try {
      await post(`/api/users/${ui.userId}/chats/${chat.id}/${action}`, {});
    } catch (error) {
      toast(error.message, true);
    }
  }

  async function press(messageId, button, element) {
    element.disabled = true;
    element.classList.add("pending");
    const result = await send({ press: { message_id: messageId, text: button.text } });
    element.disabled = false;
    element.classList.remove("pending");
    if (result && result.answer) toast(result.answer);
  }

  function connect() {
    const status = $("status");
    const events = new EventSource("/api/events");
    events.onopen = () => {
      status.dataset.state = "live";
      status.textContent = "Live";
    };
    events.onerror = () => {
      status.dataset.state = "offline";
      status.textContent = "Reconnecting…";
    };
    events.onmessage = (message) => apply(JSON.parse(message.data));
  }

  // --- accounts -------------------------------------------------------------------------------

  function userFromHash() {
    const match = /user=(\d+)/.exec(location.hash);
    return match ? Number(match[1]) : null;
  }

  function selectUser(id, render = true) {
    if (id === null || id === undefined) return;
    ui.userId = id;
    history.replaceState(null, "", `#user=${id}`);
    const chats = chatsOf(id);
    ui.chatKey = (chats.find((c) => c.type === "private") || chats[0] || {}).key ?? null;
    $("account-menu").hidden = true;
    $("account-toggle").setAttribute("aria-expanded", "false");
    if (render) renderAll();
  }

  function initials(name) {
    const words = (name || "?").trim().split(/\s+/).filter(Boolean);
    return words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join("") || "?";
  }

  function avatar(id, name, extra) {
    const hue = Math.abs(Number(id) || 0) % 7;
    return h("span", { class: `avatar c${hue}${extra ? ` ${extra}` : ""}`, "aria-hidden": "true" },
      initials(name));
  }

  function setAvatar(el, id, name) {
    el.replaceWith(Object.assign(avatar(id, name), { id: el.id }));
  }

  function renderAccounts() {
    const me = model.users.get(ui.userId);
    if (me) {
      setAvatar($("account-avatar"), me.id, me.name);
      $("account-name").textContent = me.name;
      $("account-phone").textContent = me.phone_number || (me.username ? `@${me.username}` : "");
    }
    const list = $("account-list");
    list.replaceChildren(...[...model.users.values()].map((user) => h("li", {},
      h("button", {
        type: "button",
        class: "account-item",
        "aria-current": user.id === ui.userId ? "true" : null,
        onclick: () => selectUser(user.id),
      },
      avatar(user.id, user.name),
      h("span", { class: "account-item-text" },
        h("span", { class: "account-item-name" }, user.name),
        h("span", { class: "account-item-phone" }, user.phone_number || "no phone number"))))));
  }

  // --- chat list ------------------------------------------------------------------------------

  function preview(message, userId) {
    if (!message) return "";
    const who = message.sender_id === userId ? "You: " : "";
    if (message.deleted) return `${who}Deleted message`;
    if (message.kind === "contact") return `${who}📇 Contact`;
    if (message.kind === "sticker") return `${who}${message.emoji || ""} Sticker`;
    if (message.kind === "photo") return `${who}🖼 Photo`;
    return who + (message.text || "").split("\n")[0];
  }

  function unread(chat) {
    const seen = ui.seen.get(`${ui.userId}|${chat.key}`) || 0;
    return chat.messages.filter((m) => m.sender_id !== ui.userId && !m.deleted && m.id > seen)
      .length;
  }

  function renderChatList() {
    const items = chatsOf(ui.userId).map((chat) => {
      const last = chat.messages[chat.messages.length - 1];
      const count = chat.key === ui.chatKey ? 0 : unread(chat);
      return h("li", {},
        h("button", {
          type: "button",
          class: `chat-item${chat.key === ui.chatKey ? " active" : ""}`,
          "aria-current": chat.key === ui.chatKey ? "true" : null,
          onclick: () => selectChat(chat.key),
        },
        avatar(isPrivate(chat) ? chat.bot_id : chat.id, chat.title),
        h("span", { class: "chat-item-text" },
          h("span", { class: "chat-item-top" },
            h("span", { class: "chat-item-title" }, chat.title),
            h("span", { class: "bot-badge" }, isPrivate(chat) ? "bot" : chat.type === "channel" ? "channel" : "group"),
            h("span", { class: "chat-item-time" }, last ? clock(last.date) : "")),
          h("span", { class: "chat-item-bottom" },
            h("span", { class: "chat-item-preview" }, last ? preview(last, ui.userId) : isPrivate(chat) ? "Tap Start to begin" : "No messages yet"),
            count ? h("span", { class: "unread", "aria-label": `${count} unread` }, String(count)) : null))));
    });
    $("chat-list").replaceChildren(...items);
  }

  function selectChat(key) {
    ui.chatKey = key;
    renderChatList();
    renderConversation();
    $("input").focus();
  }

  // --- the conversation -----------------------------------------------------------------------

  function clock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function day(seconds) {
    const date = new Date(seconds * 1000);
    const today = new Date();
    if (date.toDateString() === today.toDateString()) return "Today";
    return date.toLocaleDateString([], { day: "numeric", month: "long" });
  }

  // What Telegram's server marks in a bot's plain text; the stand-in leaves that to clients.
  const AUTO_ENTITIES = /(^|[\s(])(\/[A-Za-z0-9_]{1,32})(?=$|[\s.,;:!?)·])|(https?:\/\/[^\s<>"]+[^\s<>".,;:!?)])/g;

  function detectEntities(text) {
    const found = [];
    for (const match of text.matchAll(AUTO_ENTITIES)) {
      if (match[2]) {
        found.push({ type: "bot_command", offset: match.index + match[1].length, length: match[2].length });
      } else {
        found.push({ type: "url", offset: match.index, length: match[3].length });
      }
    }
    return found;
  }

  function entityNode(entity, part) {
    switch (entity.type) {
      case "bold": return h("strong", {}, part);
      case "italic": return h("em", {}, part);
      case "underline": return h("u", {}, part);
      case "strikethrough": return h("s", {}, part);
      case "spoiler": return h("span", { class: "spoiler" }, part);
      case "code": return h("code", {}, part);
      case "pre": return h("pre", {}, part);
      case "blockquote": return h("blockquote", {}, part);
      case "url": return link(part, part);
      case "text_link": return link(entity.url, part);
      case "bot_command":
        return h("button", { type: "button", class: "command", onclick: () => sendText(part) }, part);
      default: return document.createTextNode(part);
    }
  }

  // Entity offsets count UTF-16 code units, which is exactly how JavaScript indexes strings.
  function richText(text, entities) {
    const list = (entities && entities.length ? entities : detectEntities(text))
      .slice().sort((a, b) => a.offset - b.offset || b.length - a.length);
    const parts = [];
    let at = 0;
    for (const entity of list) {
      if (entity.offset < at) continue; // nested entities are shown with the outer one only
      parts.push(text.slice(at, entity.offset));
      parts.push(entityNode(entity, text.slice(entity.offset, entity.offset + entity.length)));
      at = entity.offset + entity.length;
    }
    parts.push(text.slice(at));
    return parts;
  }

  function body(message) {
    switch (message.kind) {
      case "text":
        return h("div", { class: "text" }, richText(message.text || "", message.entities));
      case "contact": {
        const c = message.contact || {};
        const name = [c.first_name, c.last_name].filter(Boolean).join(" ");
        return h("div", { class: "contact-card" },
          avatar(c.user_id || 0, name, "small"),
          h("span", { class: "contact-text" },
            h("span", { class: "contact-name" }, name),
            h("span", { class: "contact-phone" }, c.phone_number || "")));
      }
      case "sticker":
        return h("div", { class: "sticker", role: "img", "aria-label": "Sticker" }, message.emoji || "🖼");
      case "photo":
        return h("div", { class: "text" }, "🖼 Photo", message.text ? ` · ${message.text}` : "");
      default:
        return h("div", { class: "text muted" }, "This message isn't supported here.");
    }
  }

  function inlineKeyboard(chat, message) {
    if (message.deleted || !message.buttons.length) return null;
    return h("div", { class: "inline-keyboard" }, message.buttons.map((row) =>
      h("div", { class: "inline-row" }, row.map((button) => {
        if (button.kind === "url" && BOT_LINK.test(button.url)) {
          const el = h("button", { type: "button", class: "inline-button url", title: button.url }, button.text);
          el.addEventListener("click", () => openBotLink(chat, message.id, button, el));
          return el;
        }
        if (button.kind === "url") {
          const href = safeUrl(button.url);
          return h("a", {
            class: "inline-button url", href, target: "_blank", rel: "noopener noreferrer",
            title: button.url,
          }, button.text);
        }
        if (button.kind === "callback") {
          const el = h("button", { type: "button", class: "inline-button" }, button.text);
          el.addEventListener("click", () => press(message.id, button, el));
          return el;
        }
        return h("button", { type: "button", class: "inline-button", disabled: true }, button.text);
      }))));
  }

  function messageNode(chat, message) {
    if (message.kind === "service") {
      return h("div", { class: "service", dataset: { id: message.id } }, h("span", {}, message.text || ""));
    }
    const out = message.sender_id === ui.userId;
    const sticker = message.kind === "sticker" && !message.deleted;
    const classes = ["message", out ? "out" : "in"];
    if (message.deleted) classes.push("deleted");
    if (message.edited) classes.push("edited");
    if (sticker) classes.push("sticker-message");
    const meta = h("span", { class: "meta" },
      message.edited ? h("span", { class: "edited-mark" }, "edited") : null,
      h("time", {}, clock(message.date)),
      out ? h("span", { class: "ticks", "aria-hidden": "true" }, "✓✓") : null);
    const note = message.deleted
      ? h("span", { class: "deleted-mark" },
        message.from_bot ? "🗑 Deleted" : "🗑 Deleted by the bot")
      : null;
    const sender = !out && !isPrivate(chat) && chat.type !== "channel"
      ? h("span", { class: `sender c${Math.abs(Number(message.sender_id) || 0) % 7}` }, message.sender_name || "")
      : null;
    return h("div", { class: classes.join(" "), dataset: { id: message.id } },
      h("div", { class: "bubble" }, note, sender, body(message), meta),
      inlineKeyboard(chat, message));
  }

  function renderHeader() {
    const chat = model.chats.get(ui.chatKey);
    if (!chat) return;
    setAvatar($("chat-avatar"), isPrivate(chat) ? chat.bot_id : chat.id, chat.title);
    $("chat-title").textContent = chat.title || "";
    const typing = (ui.typing.get(chat.key) || 0) > Date.now();
    const subtitle = $("chat-subtitle");
    subtitle.textContent = typing ? "typing…" : isPrivate(chat) ? `bot · @${chat.username}` : groupSubtitle(chat);
    subtitle.classList.toggle("typing", typing);
    renderGroupBar(chat);
  }

  function groupSubtitle(chat) {
    const kind = chat.type === "channel" ? "channel" : "group";
    const count = chat.members.length;
    return `${kind} · ${count} ${count === 1 ? "member" : "members"} · you: ${statusLabel(standing(chat))}`;
  }

  function statusLabel(person) {
    if (person.asked) return "asked to join";
    if (person.status === "creator") return "owner";
    if (person.status === "administrator") return "admin";
    if (person.status === "restricted") return person.in_chat ? "restricted" : "left (restricted)";
    if (person.status === "kicked") return "banned";
    return person.status;
  }

  // Who is in a group and how, and what the current user may do there.
  function renderGroupBar(chat) {
    const bar = $("group-bar");
    bar.hidden = isPrivate(chat);
    if (bar.hidden) return;
    const me = standing(chat);
    const people = (chat.people || []).map((person) =>
      h("li", { class: `member-chip status-${person.status}${person.id === ui.userId ? " me" : ""}`, dataset: { id: person.id } },
        h("span", { class: "member-name" }, person.is_bot ? `🤖 ${person.name}` : person.name),
        h("span", { class: "member-status" }, statusLabel(person))));
    const actions = [];
    if (me.is_admin && !["administrator", "creator"].includes(chat.bot_status)) {
      actions.push(h("button", { type: "button", class: "chip-button", onclick: () => chatAction(chat, "bot") },
        `Add @${model.bot.username} as admin`));
    }
    if (me.in_chat && me.status !== "creator") {
      actions.push(h("button", { type: "button", class: "chip-button", onclick: () => chatAction(chat, "leave") }, "Leave"));
    }
    bar.replaceChildren(h("ul", { class: "member-list", "aria-label": "Members" }, people), ...actions);
  }

  function renderMessages(chat) {
    const box = $("messages");
    const wasAtBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    const switched = box.dataset.chat !== `${ui.userId}|${chat.key}`;
    const nodes = [];
    let lastDay = null;
    for (const message of chat.messages) {
      const label = day(message.date);
      if (label !== lastDay) {
        nodes.push(h("div", { class: "day" }, h("span", {}, label)));
        lastDay = label;
      }
      const id = `${chat.key}:${message.id}`;
      const sig = `${ui.userId}|${JSON.stringify(message)}`;
      let cached = ui.nodes.get(id);
      if (!cached || cached.sig !== sig) {
        cached = { sig, node: messageNode(chat, message) };
        ui.nodes.set(id, cached);
      }
      nodes.push(cached.node);
    }
    if (!chat.messages.length && !isPrivate(chat)) {
      nodes.push(h("div", { class: "empty-chat" },
        h("strong", {}, `${chat.title}`),
        h("span", {}, standing(chat).is_admin
          ? `Add @${model.bot.username} as an admin, then type /gate help here.`
          : "No messages yet.")));
    } else if (!chat.messages.length) {
      nodes.push(h("div", { class: "empty-chat" },
        h("strong", {}, `${chat.title}`),
        h("span", {}, `The sign-in bot for ${model.appName}. Press Start below to talk to it, as a new user would on Telegram.`)));
    }
    box.replaceChildren(...nodes);
    box.dataset.chat = `${ui.userId}|${chat.key}`;
    if (wasAtBottom || switched) box.scrollTop = box.scrollHeight;
    const newest = chat.messages[chat.messages.length - 1];
    if (newest) ui.seen.set(`${ui.userId}|${chat.key}`, newest.id);
  }

  function renderComposer() {
    const chat = model.chats.get(ui.chatKey);
    const group = chat && !isPrivate(chat);
    const me = group ? standing(chat) : null;
    const join = $("join");
    join.hidden = !group || me.in_chat;
    if (group && !me.in_chat) {
      join.textContent = me.asked ? "Request sent" : chat.join_by_request ? "Ask to join" : `Join ${chat.type === "channel" ? "channel" : "group"}`;
      join.disabled = me.asked || me.status === "kicked";
    }
    const note = $("composer-note");
    note.hidden = !group || !me.in_chat || me.can_write;
    note.textContent = me && me.status === "restricted"
      ? "You're restricted here: the server won't take your messages."
      : "Only admins post here.";
    const started = chat && (chat.opened || chat.messages.length > 0) && (!group || me.in_chat);
    $("composer").hidden = !started;
    $("start").hidden = !chat || group || started;
    const keyboard = chat && started ? chat.keyboard : null;
    const toggle = $("keyboard-toggle");
    toggle.hidden = !keyboard;
    toggle.setAttribute("aria-pressed", String(ui.keyboardOpen));
    const box = $("reply-keyboard");
    box.hidden = !keyboard || !ui.keyboardOpen;
    box.replaceChildren(...(keyboard || []).map((row) =>
      h("div", { class: "keyboard-row" }, row.map((button) =>
        h("button", {
          type: "button",
          class: `keyboard-button${button.request_contact ? " contact" : ""}`,
          onclick: () => send({ tap: button.text }),
        }, button.text)))));
  }

  function renderConversation() {
    const chat = model.chats.get(ui.chatKey);
    $("conversation").classList.toggle("no-chat", !chat);
    if (!chat) return;
    renderHeader();
    renderMessages(chat);
    renderComposer();
  }

  // --- outbox ---------------------------------------------------------------------------------

  function outboxNode(entry) {
    const email = entry.kind === "email";
    const fresh = ui.freshOutbox.delete(entry.id);
    const code = entry.code
      ? h("div", { class: "entry-code" },
        h("span", { class: "code", "aria-label": `Code ${entry.code}` }, entry.code),
        h("button", { type: "button", class: "chip-button", onclick: () => copy(entry.code) }, "Copy"),
        h("button", { type: "button", class: "chip-button", onclick: () => typeIn(entry.code) }, "Type it"))
      : null;
    return h("li", { class: `outbox-entry${fresh ? " fresh" : ""}`, dataset: { id: entry.id } },
      h("div", { class: "entry-head" },
        h("span", { class: "entry-channel" }, email ? "✉️ Email" : "💬 SMS"),
        h("span", { class: "chip", title: `Delivered by the "${entry.channel}" channel` },
          entry.channel === "log" ? "dev delivery" : entry.channel),
        h("time", { datetime: entry.at }, new Date(entry.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }))),
      h("div", { class: "entry-to" },
        h("span", { class: "entry-address" }, entry.display),
        h("span", { class: "entry-masked" }, `shown in the chat as ${entry.masked}`)),
      code,
      h("p", { class: "entry-text" }, entry.text));
  }

  function renderOutbox() {
    const entries = [...model.outbox].reverse();
    $("outbox-list").replaceChildren(...entries.map(outboxNode));
    $("outbox-empty").hidden = entries.length > 0;
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied");
    } catch {
      toast("Copying isn't allowed here; select the code instead", true);
    }
  }

  function typeIn(text) {
    const input = $("input");
    input.value = text;
    input.focus();
    autosize();
  }

  // --- the rest of the page ---------------------------------------------------------------------

  let toastTimer = null;
  function toast(text, error = false) {
    const el = $("toast");
    el.textContent = text;
    el.classList.toggle("error", error);
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, 3500);
  }

  function autosize() {
    const input = $("input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  function renderAll() {
    document.title = model.appName ? `${model.appName} · Passgram sandbox` : "Passgram sandbox";
    renderAccounts();
    renderChatList();
    renderConversation();
    renderOutbox();
  }

  async function submitInput() {
    const input = $("input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    autosize();
    if (!(await sendText(text))) input.value = text;
  }

  function closeMenus(except) {
    for (const [menu, button] of [["account-menu", "account-toggle"], ["attach-menu", "attach-toggle"]]) {
      if (menu === except) continue;
      $(menu).hidden = true;
      $(button).setAttribute("aria-expanded", "false");
    }
  }

  function toggleMenu(menu, button) {
    const open = $(menu).hidden;
    closeMenus(menu);
    $(menu).hidden = !open;
    $(button).setAttribute("aria-expanded", String(open));
  }

  function formDialog(dialogId, formId, submit) {
    const dialog = $(dialogId);
    const form = $(formId);
    const error = form.querySelector(".form-error");
    form.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const values = Object.fromEntries(new FormData(form).entries());
      try {
        await submit(values);
        dialog.close();
        form.reset();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
    return () => {
      error.hidden = true;
      dialog.showModal();
      form.querySelector("input").focus();
    };
  }

  function wire() {
    $("send").addEventListener("click", submitInput);
    $("start").addEventListener("click", () => sendText("/start"));
    $("join").addEventListener("click", () => {
      const chat = model.chats.get(ui.chatKey);
      if (chat && !isPrivate(chat)) chatAction(chat, "join");
    });
    const input = $("input");
    input.addEventListener("input", autosize);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submitInput();
      }
    });
    $("keyboard-toggle").addEventListener("click", () => {
      ui.keyboardOpen = !ui.keyboardOpen;
      renderComposer();
    });
    $("account-toggle").addEventListener("click", () => toggleMenu("account-menu", "account-toggle"));
    $("attach-toggle").addEventListener("click", () => toggleMenu("attach-menu", "attach-toggle"));
    document.addEventListener("click", (event) => {
      if (!event.target.closest(".account, .attach")) closeMenus(null);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeMenus(null);
    });

    const openUserDialog = formDialog("user-dialog", "user-form", async (values) => {
      const user = await post("/api/users", values);
      model.users.set(user.id, user);
      ensurePrivateChat(user.id);
      selectUser(user.id);
    });
    $("account-add").addEventListener("click", () => {
      closeMenus(null);
      openUserDialog();
    });

    const openChatDialog = formDialog("chat-dialog", "chat-form", async (values) => {
      const chat = await post(`/api/users/${ui.userId}/chats`, {
        title: values.title, kind: values.kind, join_by_request: values.join_by_request === "on",
      });
      const known = model.chats.get(chat.key) || { messages: [] };
      model.chats.set(chat.key, Object.assign(known, chat, { messages: known.messages }));
      selectChat(chat.key);
    });
    $("chat-add").addEventListener("click", openChatDialog);

    const openContactDialog = formDialog("contact-dialog", "contact-form", async (values) => {
      await post(`/api/users/${ui.userId}/send`, { contact: values });
    });
    $("attach-own-contact").addEventListener("click", () => {
      closeMenus(null);
      send({ contact: {} });
    });
    $("attach-other-contact").addEventListener("click", () => {
      closeMenus(null);
      openContactDialog();
    });
    $("attach-sticker").addEventListener("click", () => {
      closeMenus(null);
      send({ sticker: "🐱" });
    });
    window.addEventListener("hashchange", () => {
      const id = userFromHash();
      if (id !== ui.userId && model.users.has(id)) selectUser(id);
    });
  }

  wire();
  connect();
})();
