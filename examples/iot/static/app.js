// The dashboard: logs in to the broker over Web MQTT (MQTT.js) as the user who typed their name and
// password, subscribes to each device's telemetry topic and shows what arrives, live.
//
// The broker, not this page, decides what the user may read: a device the user has no topic
// permission for is refused by the broker, which the page shows as "no access". Nothing is filtered
// here. Each device has a connection of its own, because brokers refuse differently: the MQTT
// specification (and WarrenMQ) answer a refused SUBSCRIBE with the failure code 0x80 and keep the
// connection, RabbitMQ 3.x closes the connection. Either way only that device's card says so.
import mqtt from "./vendor/mqtt/mqtt.esm.js";

const $ = (id) => document.getElementById(id);
let session = null; // {user, clients: [MQTT.js clients], loggedIn}

function setStatus(text) {
  $("status").textContent = text;
}

function card(device) {
  return document.querySelector(`article.device[data-device="${CSS.escape(device)}"]`);
}

function deviceCard(device) {
  const article = document.createElement("article");
  article.className = "device";
  article.dataset.device = device;
  article.setAttribute("aria-label", device);
  article.innerHTML = `<h2></h2><p class="access">subscribing…</p><p class="reading">no reading yet</p>
    <p class="count">0 messages</p>`;
  article.querySelector("h2").textContent = device;
  return article;
}

function setAccess(device, state) {
  const c = card(device);
  c.classList.remove("live", "denied", "gone");
  c.classList.add({ live: "live", "no access": "denied", disconnected: "gone" }[state]);
  c.querySelector(".access").textContent = state;
}

function showReading(topic, payload) {
  const device = topic.split("/")[1]; // devices/<id>/telemetry
  let r;
  try {
    r = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    r = { seq: "?", temperature: "?", humidity: "?" };
  }
  const c = card(device);
  if (c) {
    c.querySelector(".reading").textContent = `#${r.seq}: ${r.temperature} °C, ${r.humidity} %`;
    const count = c.querySelector(".count");
    const n = Number(count.dataset.n || 0) + 1;
    count.dataset.n = n;
    count.textContent = `${n} message${n === 1 ? "" : "s"}`;
    c.classList.add("fresh");
    setTimeout(() => c.classList.remove("fresh"), 600);
  }
  const li = document.createElement("li");
  li.dataset.readingId = r.id || "";
  li.dataset.device = device;
  li.textContent = `${new Date().toLocaleTimeString()} ${device} #${r.seq}: ${r.temperature} °C, ` +
    `${r.humidity} % (reading ${r.id})`;
  const log = $("log");
  log.prepend(li);
  while (log.children.length > 200) log.lastElementChild.remove();
}

function showDashboard(s, devices) {
  s.loggedIn = true;
  setStatus(`Logged in as ${s.user}`);
  $("login").hidden = true;
  $("logout").hidden = false;
  $("devices").replaceChildren(...devices.map(deviceCard));
  $("devices").hidden = false;
  $("log").replaceChildren();
  $("log-section").hidden = false;
}

function refuseLogin(s, reason) {
  if (session !== s || s.loggedIn) return;
  session = null;
  for (const c of s.clients) c.end(true);
  $("login-error").textContent = reason;
  setStatus("Not logged in");
}

// One device's connection: subscribe once connected, show what the broker answers and what arrives.
function watch(s, config, username, password, device) {
  const client = mqtt.connect(config.web_mqtt, {
    username,
    password,
    clientId: `dashboard-${s.id}-${device}`,
    protocolVersion: 4, // MQTT 3.1.1, which RabbitMQ 3.x and WarrenMQ both speak
    clean: true,
    reconnectPeriod: 0, // a refusal is final; reconnecting would be refused again
    connectTimeout: 10_000,
  });
  let connected = false;
  client.on("connect", () => {
    connected = true;
    if (session !== s) return client.end(true);
    if (!s.loggedIn) showDashboard(s, config.devices);
    client.subscribe(`devices/${device}/telemetry`, { qos: 0 }, (err) => {
      if (session === s) setAccess(device, err ? "no access" : "live");
    });
  });
  client.on("message", showReading);
  // a refused CONNECT: MQTT.js says "Connection refused: Bad username or password" and the like
  client.on("error", (err) => connected || refuseLogin(s, err.message));
  client.on("close", () => {
    if (!connected) refuseLogin(s, "Login refused: the broker closed the connection");
    else if (session === s && card(device).classList.contains("live")) setAccess(device, "disconnected");
  });
  return client;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const user = $("username").value;
  const password = $("password").value;
  const config = await (await fetch("/config.json")).json();
  setStatus(`Connecting to ${config.web_mqtt} as ${user}…`);
  // RabbitMQ's MQTT plugins read "vhost:user" as a user in that vhost
  const username = config.vhost === "/" ? user : `${config.vhost}:${user}`;
  const s = { user, id: `${user}-${Math.random().toString(16).slice(2, 10)}`, clients: [], loggedIn: false };
  session = s;
  s.clients = config.devices.map((device) => watch(s, config, username, password, device));
}

function logout() {
  const s = session;
  session = null;
  if (s) for (const c of s.clients) c.end();
  $("devices").hidden = true;
  $("log-section").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("password").value = "";
  setStatus("Not logged in");
}

$("login").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
