// The page's elements and how they show state: status, errors, the transcript and the media meters.

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`#${id} is missing from index.html`);
  return element as T;
}

export const ui = {
  serviceUrl: byId<HTMLElement>("service-url"),
  jwt: byId<HTMLInputElement>("jwt"),
  profile: byId<HTMLSelectElement>("profile"),
  profileDescription: byId<HTMLElement>("profile-description"),
  micOnConnect: byId<HTMLInputElement>("mic-on-connect"),
  reuseToken: byId<HTMLInputElement>("reuse-token"),
  retryToken: byId<HTMLInputElement>("retry-token"),
  connect: byId<HTMLButtonElement>("connect"),
  disconnect: byId<HTMLButtonElement>("disconnect"),
  status: byId<HTMLElement>("status"),
  error: byId<HTMLElement>("error"),
  transcript: byId<HTMLOListElement>("transcript"),
  chat: byId<HTMLFormElement>("chat"),
  chatInput: byId<HTMLInputElement>("chat-input"),
  chatSend: byId<HTMLButtonElement>("chat-send"),
  mic: byId<HTMLButtonElement>("mic"),
  camera: byId<HTMLButtonElement>("camera"),
  screen: byId<HTMLButtonElement>("screen"),
  preview: byId<HTMLVideoElement>("preview"),
  micMeter: byId<HTMLElement>("mic-meter"),
  videoMeter: byId<HTMLElement>("video-meter"),
  audioMeter: byId<HTMLElement>("audio-meter"),
};

export function setStatus(text: string, state: "idle" | "busy" | "connected"): void {
  ui.status.textContent = text;
  ui.status.dataset["state"] = state;
}

/** A visible error: a heading, then lines (the server's own words where it gave any). */
export function showError(title: string, ...lines: string[]): void {
  ui.error.replaceChildren();
  const heading = document.createElement("strong");
  heading.textContent = title;
  ui.error.append(heading);
  for (const line of lines.filter(Boolean)) {
    const p = document.createElement("p");
    p.textContent = line;
    ui.error.append(p);
  }
  ui.error.hidden = false;
}

export function clearError(): void {
  ui.error.hidden = true;
  ui.error.replaceChildren();
}

/** Which controls work: Connect when idle; Disconnect, chat, microphone and video when connected; none when busy. */
export function setControls(state: "idle" | "busy" | "connected"): void {
  ui.connect.disabled = state !== "idle";
  ui.profile.disabled = state !== "idle";
  ui.disconnect.disabled = state !== "connected";
  for (const control of [ui.chatInput, ui.chatSend, ui.mic, ui.camera, ui.screen]) {
    control.disabled = state !== "connected";
  }
}

export type Role = "user" | "model" | "tool" | "note";
const SPEAKER: Record<Role, string> = { user: "You", model: "Model", tool: "Tool", note: "" };

/** The conversation as text, streamed: transcript pieces join the open entry of their role until the turn ends. */
export class Transcript {
  private readonly open = new Map<Role, HTMLLIElement>();

  constructor(private readonly list: HTMLOListElement) {}

  /** Append streamed text (a transcription or text part) to the open entry of `role`, opening one if needed. */
  append(role: "user" | "model", text: string): void {
    const entry = this.open.get(role) ?? this.start(role);
    const body = entry.querySelector(".text");
    if (body !== null) body.textContent = (body.textContent ?? "") + text;
    this.scroll();
  }

  /** The model has started speaking (audio before its transcript): show that an answer is under way. */
  modelSpeaking(): void {
    if (!this.open.has("model")) this.start("model");
  }

  /** A complete entry on its own (a typed message, a tool call, a note). */
  add(role: Role, text: string): void {
    const entry = this.start(role, false);
    const body = entry.querySelector(".text");
    if (body !== null) body.textContent = text;
    entry.dataset["state"] = "done";
    this.scroll();
  }

  /** turnComplete: close what is open. */
  endTurn(): void {
    for (const entry of this.open.values()) entry.dataset["state"] = "done";
    this.open.clear();
  }

  /** The user spoke over the model: its open answer is cut short. */
  interrupted(): void {
    const entry = this.open.get("model");
    if (entry !== undefined) entry.dataset["state"] = "interrupted";
    this.open.delete("model");
  }

  clear(): void {
    this.open.clear();
    this.list.replaceChildren();
  }

  private start(role: Role, keepOpen = true): HTMLLIElement {
    this.open.get(role)?.setAttribute("data-state", "done");
    const entry = document.createElement("li");
    entry.className = "entry";
    entry.dataset["role"] = role;
    entry.dataset["state"] = "open";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = SPEAKER[role];
    const body = document.createElement("span");
    body.className = "text";
    entry.append(who, body);
    this.list.append(entry);
    if (keepOpen) this.open.set(role, entry);
    else this.open.delete(role);
    return entry;
  }

  private scroll(): void {
    this.list.scrollTop = this.list.scrollHeight;
  }
}

/** Write a meter's text and its numbers (as data-* attributes, which tests and tooling read). */
export function setMeter(element: HTMLElement, text: string, values: Record<string, number>): void {
  element.textContent = text;
  for (const key of Object.keys(element.dataset)) delete element.dataset[key]; // no figure of another kind stays
  for (const [key, value] of Object.entries(values)) element.dataset[key] = String(value);
}
