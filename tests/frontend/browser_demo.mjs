// Drives examples/browser in headless Debian Chromium (playwright-core, no browser download) the way a user does,
// and prints one JSON object with what the page showed in each scenario. tests/frontend/test_browser.py runs it.
//
// Input (stdin, JSON; it carries secrets, so never argv): demo_url, jwt (scope live:tools), limited_jwt (a caller
// already over its rate limit), configured ({url, jwt}: a configured livetoken whose `single` profile has no session
// resumption), emulator ({base_url, api_key}: its admin API cuts Live lifetimes for a scenario; Node trusts its CA
// through NODE_EXTRA_CA_CERTS), wav (the fake microphone), home (HOME with the NSS database that
// trusts the emulator's CA), user_data_dir, screenshot_dir, chromium.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const exampleDir = fileURLToPath(new URL("../../examples/browser/", import.meta.url));
const { chromium } = createRequire(join(exampleDir, "package.json"))("playwright-core");

const input = JSON.parse(readFileSync(0, "utf8"));
const secrets = [input.jwt, input.limited_jwt, input.configured?.jwt, input.emulator?.api_key].filter(Boolean);
/** Secrets never reach the output, not even inside an error message that quotes a URL. */
const redact = (text) => secrets.reduce((out, secret) => out.split(secret).join("<redacted>"), String(text));
const WAIT = { timeout: 20_000 };

function pageUrl(profile, jwt, service) {
  const url = new URL(input.demo_url);
  if (service) url.searchParams.set("service", service);
  url.searchParams.set("profile", profile);
  url.hash = `jwt=${encodeURIComponent(jwt)}`;
  return url.href;
}

/**
 * Runs in every page before the page's own code: counts the audio sources it starts (what reaches the speakers),
 * reads the transcript's entries as the user sees them, and takes a snapshot of everything the tests look at.
 */
function pageProbe() {
  window.audioSourcesStarted = 0;
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (...args) {
    window.audioSourcesStarted += 1;
    return start.apply(this, args);
  };
  window.transcriptEntries = () =>
    [...document.querySelectorAll("#transcript .entry")].map((li) => ({
      role: li.dataset.role,
      state: li.dataset.state,
      text: li.querySelector(".text")?.textContent ?? "",
    }));
  /** Everything a user sees (and hears: audio sources started) that the tests look at. */
  window.pageSnapshot = () => {
    const text = (id) => document.getElementById(id)?.textContent?.trim() ?? null;
    const data = (id) => ({ ...(document.getElementById(id)?.dataset ?? {}) });
    return {
      url: window.location.href,
      status: text("status"),
      error: document.getElementById("error")?.hidden ? null : document.getElementById("error").innerText.trim(),
      entries: window.transcriptEntries(),
      profiles: [...document.querySelectorAll("#profile option")].map((o) => o.value),
      options: [...document.querySelectorAll("#profile option")].map((o) => o.textContent),
      description: text("profile-description"),
      audioStarts: window.audioSourcesStarted,
      mic: { text: text("mic-meter"), ...data("mic-meter") },
      video: { text: text("video-meter"), ...data("video-meter") },
      audio: { text: text("audio-meter"), ...data("audio-meter") },
      jwtField: document.getElementById("jwt").value.length > 0,
      connectEnabled: !document.getElementById("connect").disabled,
    };
  };
  /** Every text the status line shows, in order, from the moment this is called. */
  window.recordStatuses = () => {
    const status = document.getElementById("status");
    window.statuses = [status.textContent];
    new MutationObserver(() => {
      if (window.statuses.at(-1) !== status.textContent) window.statuses.push(status.textContent);
    }).observe(status, { childList: true, characterData: true, subtree: true });
  };
}

async function snapshot(page) {
  return page.evaluate(() => window.pageSnapshot());
}

/** The emulator's admin API (`/_emulator/…`, with its API key). */
async function emulatorAdmin(method, path, body) {
  const response = await fetch(`${input.emulator.base_url}/_emulator${path}`, {
    method,
    headers: { "x-goog-api-key": input.emulator.api_key, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} /_emulator${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Run `scenario` with the emulator's Live lifetimes cut to `lifetimes` (seconds), restored afterwards. */
async function withLifetimes(lifetimes, scenario) {
  await emulatorAdmin("POST", "/faults", lifetimes);
  try {
    return await scenario();
  } finally {
    await emulatorAdmin("DELETE", "/faults");
  }
}

/** The Live sessions the emulator saw after the first `skip`: resumed or not, and whether on the first's token. */
async function sessionsSince(skip) {
  const sessions = (await emulatorAdmin("GET", "/sessions")).slice(skip);
  return sessions.map((s) => ({ resumed: s.resumed, sameToken: s.token === sessions[0]?.token, video: s.video }));
}

async function openPage(context, profile, jwt, service) {
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(redact(error.stack ?? error.message)));
  await page.goto(pageUrl(profile, jwt, service));
  await page.waitForFunction((p) => document.querySelector("#profile").value === p, profile, WAIT);
  return page;
}

/** In the page: a finished model entry matches the regular expression `re`. */
const modelDone = (re) =>
  [...document.querySelectorAll('#transcript .entry[data-role="model"][data-state="done"] .text')].some((t) =>
    new RegExp(re).test(t.textContent),
  );

/** In the page: every chunk of reply audio scheduled so far has finished playing. */
const allPlayed = () => {
  const { scheduledSeconds, playedSeconds } = document.getElementById("audio-meter").dataset;
  return Number(scheduledSeconds) > 0 && playedSeconds === scheduledSeconds;
};

/** GET /v1/profiles' entry for `name`, as the page got it. */
async function profileInfo(name) {
  const service = new URL(input.demo_url).origin;
  const response = await fetch(`${service}/v1/profiles`, { headers: { Authorization: `Bearer ${input.jwt}` } });
  return (await response.json()).profiles.find((p) => p.name === name) ?? null;
}

/** Voice: microphone turn, both transcripts, reply audio; then speaking over a long answer interrupts it. */
async function voice(context) {
  const page = await openPage(context, "voice", input.jwt);
  const out = { loaded: await snapshot(page) };
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  await page.waitForFunction(modelDone, "^I heard", WAIT);
  // The whole answer has come out of the speakers: every scheduled chunk has ended.
  await page.waitForFunction(allPlayed, null, WAIT);
  out.turn = await snapshot(page);
  await page.screenshot({ path: join(input.screenshot_dir, "voice.png"), fullPage: true });

  // A long typed question gets a long spoken answer; the looping microphone speaks over it.
  await page.fill("#chat-input", "Please tell me a long story about a lighthouse keeper and the sea.");
  await page.click("#chat-send");
  await page.waitForSelector('#transcript .entry[data-role="model"][data-state="interrupted"]', WAIT);
  out.interrupted = await snapshot(page);
  out.queuedAfterInterrupt = await page.evaluate(() => document.getElementById("audio-meter").dataset.queuedSeconds);
  await page.click("#disconnect");
  await page.waitForFunction(() => document.getElementById("status").textContent === "Disconnected", null, WAIT);

  // The same token again: single use, so the Live API refuses the session with a close code and a reason.
  await page.click("details summary");
  await page.check("#reuse-token");
  await page.uncheck("#mic-on-connect");
  await page.click("#connect");
  await page.waitForSelector("#error:not([hidden])", WAIT);
  out.reused = await snapshot(page);
  await page.screenshot({ path: join(input.screenshot_dir, "reused-token.png"), fullPage: true });
  await page.close();
  return out;
}

/** Text: the `text` profile's reply is its transcript, shown as the model's text; no audio is played. */
async function text(context) {
  const page = await openPage(context, "text", input.jwt);
  const out = { loaded: await snapshot(page), profile: await profileInfo("text") };
  await page.uncheck("#mic-on-connect");
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  out.connected = await snapshot(page);
  await page.fill("#chat-input", "Hello there");
  await page.click("#chat-send");
  await page.waitForFunction(modelDone, "^You said: Hello there$", WAIT);
  out.turn = await snapshot(page);
  await page.screenshot({ path: join(input.screenshot_dir, "text.png"), fullPage: true });
  await page.click("#disconnect");
  await page.close();
  return out;
}

/**
 * Function calling: a blocking call (calculate), whose turn waits for the page's answer; then a non-blocking one
 * (get_current_time), answered at once while the model goes on talking, whose result is spoken as a turn of its own.
 */
async function tools(context) {
  const page = await openPage(context, "tools", input.jwt);
  await page.uncheck("#mic-on-connect");
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  await page.fill("#chat-input", "calculate 6*7");
  await page.click("#chat-send");
  await page.waitForFunction(modelDone, "^calculate returned", WAIT);
  await page.waitForFunction(allPlayed, null, WAIT);
  const out = { blocking: await snapshot(page) };

  // From here on, every change to the transcript is recorded with the reply-audio meter at that moment.
  await page.evaluate(() => {
    window.timeline = [];
    const meter = document.getElementById("audio-meter");
    const record = () => window.timeline.push({ entries: window.transcriptEntries(), audio: { ...meter.dataset } });
    const options = { childList: true, subtree: true, characterData: true, attributes: true };
    new MutationObserver(record).observe(document.getElementById("transcript"), options);
  });
  await page.fill("#chat-input", "get_current_time");
  await page.click("#chat-send");
  await page.waitForFunction(modelDone, "^get_current_time returned", WAIT);
  await page.waitForFunction(allPlayed, null, WAIT);
  out.nonBlocking = await snapshot(page);
  out.timeline = await page.evaluate(() => window.timeline);
  await page.screenshot({ path: join(input.screenshot_dir, "tools.png"), fullPage: true });
  await page.click("#disconnect");
  await page.close();
  return out;
}

/** Asks for tokens as `jwt` until livetoken answers 429 (dev mode: a burst of 10, then one every 2 s). */
async function exhaustRateLimit(jwt) {
  const service = new URL(input.demo_url).origin;
  for (let i = 0; i < 20; i++) {
    const response = await fetch(`${service}/v1/tokens`, {
      method: "POST",
      headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
      body: JSON.stringify({ profile: "text" }),
    });
    const body = await response.json();
    if (response.status === 429) return { title: body.title, detail: body.detail };
  }
  return null;
}

/**
 * A caller over its rate limit. Without retries (a developer option) the page shows the problem's title, detail and
 * Retry-After; with them (the default) it counts Retry-After down in the status line, asks again and connects.
 */
async function rateLimited(context) {
  const page = await openPage(context, "text", input.limited_jwt);
  await page.uncheck("#mic-on-connect");
  await page.click("details summary");
  await page.uncheck("#retry-token");
  const problem = await exhaustRateLimit(input.limited_jwt);
  await page.click("#connect");
  await page.waitForSelector("#error:not([hidden])", WAIT);
  const out = { problem, refused: await snapshot(page) };

  await page.check("#retry-token");
  out.problemAgain = await exhaustRateLimit(input.limited_jwt);
  await page.evaluate(() => window.recordStatuses());
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  out.retried = await snapshot(page);
  out.statuses = await page.evaluate(() => window.statuses);
  await page.click("#disconnect");
  await page.close();
  return out;
}

const RECONNECTED = "Reconnected, session continues.";

/**
 * Voice across connections: the emulator closes each connection after 4 s (goAway 2.5 s before). The page moves the
 * session to a new connection each time and the conversation goes on: three reconnections, then a spoken turn
 * answered after the third, every reply played whole. At each reconnection the reply-audio meter is recorded.
 */
async function reconnections(context) {
  return withLifetimes({ max_connection_seconds: 4, goaway_lead_seconds: 2.5 }, async () => {
    const skip = (await emulatorAdmin("GET", "/sessions")).length;
    const page = await openPage(context, "voice", input.jwt);
    await page.evaluate((note) => {
      window.atReconnection = [];
      new MutationObserver(() => {
        const notes = window.transcriptEntries().filter((e) => e.role === "note" && e.text === note).length;
        if (notes > window.atReconnection.length) window.atReconnection.push(window.pageSnapshot());
      }).observe(document.getElementById("transcript"), { childList: true });
    }, RECONNECTED);
    await page.click("#connect");
    await page.waitForSelector('#status[data-state="connected"]', WAIT);
    // Taken in one go once it holds: three reconnections, a reply finished after the third, all audio played.
    const ready = await page.waitForFunction(
      (note) => {
        const entries = window.transcriptEntries();
        const notes = entries.flatMap((e, i) => (e.role === "note" && e.text === note ? [i] : []));
        if (notes.length < 3) return false;
        const answered = entries.slice(notes[2]).some((e) => e.role === "model" && e.state === "done");
        const { scheduledSeconds, playedSeconds } = document.getElementById("audio-meter").dataset;
        const open = entries.some((e) => e.state === "open");
        return answered && !open && playedSeconds === scheduledSeconds && window.pageSnapshot();
      },
      RECONNECTED,
      { timeout: 40_000 },
    );
    const out = { continued: await ready.jsonValue() };
    out.atReconnection = await page.evaluate(() => window.atReconnection);
    await page.screenshot({ path: join(input.screenshot_dir, "reconnections.png"), fullPage: true });
    await page.click("#disconnect");
    out.disconnected = await snapshot(page);
    out.sessions = await sessionsSince(skip);
    await page.close();
    return out;
  });
}

const NEW_SESSION =
  "Reconnected with a new token: a new session started, and the model does not remember what came before.";

/**
 * A profile without session resumption (`single`, on a configured livetoken): when the emulator ends a connection
 * (after 3 s, goAway 1.5 s before), the page starts a new session on a fresh token and says so; a message typed
 * afterwards is answered.
 */
async function newSession(context) {
  return withLifetimes({ max_connection_seconds: 3, goaway_lead_seconds: 1.5 }, async () => {
    const skip = (await emulatorAdmin("GET", "/sessions")).length;
    const page = await openPage(context, "single", input.configured.jwt, input.configured.url);
    await page.uncheck("#mic-on-connect");
    await page.click("#connect");
    await page.waitForSelector('#status[data-state="connected"]', WAIT);
    await page.waitForFunction(
      (note) => window.transcriptEntries().some((e) => e.role === "note" && e.text === note),
      NEW_SESSION,
      WAIT,
    );
    await page.fill("#chat-input", "Are you still there?");
    await page.click("#chat-send");
    await page.waitForFunction(modelDone, "^You said: Are you still there\\?$", WAIT);
    await page.click("#disconnect");
    const out = { after: await snapshot(page), sessions: await sessionsSince(skip) };
    await page.close();
    return out;
  });
}

/**
 * A video session at the session limit (cut to 3 s): the page says the session is over and why, and stops. It has
 * moved once on the goAway before the limit: the new connection heard of the same end, so it waited for the close.
 */
async function videoLimit(context) {
  return withLifetimes({ video_session_seconds: 3, goaway_lead_seconds: 1 }, async () => {
    const skip = (await emulatorAdmin("GET", "/sessions")).length;
    const page = await openPage(context, "video", input.jwt);
    await page.uncheck("#mic-on-connect");
    await page.click("#connect");
    await page.waitForSelector('#status[data-state="connected"]', WAIT);
    await page.click("#camera");
    await page.waitForSelector("#error:not([hidden])", WAIT);
    const out = { ended: await snapshot(page), sessions: await sessionsSince(skip) };
    await page.screenshot({ path: join(input.screenshot_dir, "video-limit.png"), fullPage: true });
    await page.close();
    return out;
  });
}

/** Camera: the fake camera is previewed and sent at 1 frame/s with the microphone; the answer counts frames. */
async function camera(context) {
  const page = await openPage(context, "video", input.jwt);
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  await page.click("#camera");
  await page.waitForFunction(modelDone, "^I saw", WAIT);
  const out = { turn: await snapshot(page) };
  await page.screenshot({ path: join(input.screenshot_dir, "camera.png"), fullPage: true });
  await page.click("#disconnect");
  await page.close();
  return out;
}

/** Screen sharing (Chromium's fake screen) with a typed question: the answer counts the frames sent before it. */
async function screen(context) {
  const page = await openPage(context, "video", input.jwt);
  await page.uncheck("#mic-on-connect");
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]', WAIT);
  await page.click("#screen");
  await page.waitForFunction(() => Number(document.getElementById("video-meter").dataset.frames) >= 2, null, WAIT);
  const before = await snapshot(page);
  await page.fill("#chat-input", "What do you see?");
  await page.click("#chat-send");
  await page.waitForFunction(modelDone, "^I saw", WAIT);
  const out = { before, turn: await snapshot(page) };
  await page.screenshot({ path: join(input.screenshot_dir, "screen.png"), fullPage: true });
  await page.click("#disconnect");
  await page.close();
  return out;
}

const pageErrors = []; // uncaught exceptions in the page
const results = {};
const started = Date.now();
const context = await chromium.launchPersistentContext(input.user_data_dir, {
  executablePath: input.chromium,
  headless: true,
  env: { ...process.env, HOME: input.home },
  viewport: { width: 1280, height: 800 },
  permissions: ["microphone", "camera"],
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-audio-capture=${input.wav}`,
  ],
});
await context.addInitScript(pageProbe);
results.launch_seconds = (Date.now() - started) / 1000;
try {
  const scenarios = { voice, text, tools, rateLimited, camera, screen, reconnections, newSession, videoLimit };
  for (const [name, scenario] of Object.entries(scenarios)) {
    const t0 = Date.now();
    try {
      results[name] = await scenario(context);
    } catch (error) {
      results[name] = { failed: redact(error.stack ?? error) };
      for (const page of context.pages()) {
        results[name].page = await snapshot(page).catch(() => null);
        await page.screenshot({ path: join(input.screenshot_dir, `${name}-failed.png`) }).catch(() => {});
        await page.close();
      }
    }
    results[name].seconds = (Date.now() - t0) / 1000;
  }
} finally {
  await context.close();
}
results.page_errors = pageErrors;
process.stdout.write(redact(JSON.stringify(results, null, 2)) + "\n");
