// The dashboard: logs in to the broker over Web MQTT (MQTT.js) as the user who typed their name and
// password, subscribes to each device's telemetry topic and shows what arrives, live.
//
// The broker, not this page, decides what the user may read: each device is one SUBSCRIBE, and a
// device the user has no topic permission for is refused by the broker (SUBACK failure code 0x80),
// which the page shows as "no access". Nothing is filtered here.
import mqtt from "./vendor/mqtt/mqtt.esm.js";

const $ = (id) => document.getElementById(id);
let client = null;

function setStatus(text) {
  $("status").textContent = text;
}

function deviceCard(device) {
  const card = document.createElement("article");
  card.className = "device";
  card.dataset.device = device;
  card.setAttribute("aria-label", device);
  card.innerHTML = `<h2></h2><p class="access">subscribing…</p><p class="reading">no reading yet</p>
    <p class="count">0 messages</p>`;
  card.querySelector("h2").textContent = device;
  return card;
}

function showReading(topic, payload) {
  const device = topic.split("/")[1]; // devices/<id>/telemetry
  let r;
  try {
    r = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    r = { seq: "?", temperature: "?", humidity: "?" };
  }
  const card = document.querySelector(`article.device[data-device="${CSS.escape(device)}"]`);
  if (card) {
    card.querySelector(".reading").textContent = `#${r.seq}: ${r.temperature} °C, ${r.humidity} %`;
    const count = card.querySelector(".count");
    const n = Number(count.dataset.n || 0) + 1;
    count.dataset.n = n;
    count.textContent = `${n} message${n === 1 ? "" : "s"}`;
    card.classList.add("fresh");
    setTimeout(() => card.classList.remove("fresh"), 600);
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

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const user = $("username").value;
  const password = $("password").value;
  const config = await (await fetch("/config.json")).json();
  setStatus(`Connecting to ${config.web_mqtt} as ${user}…`);
  // RabbitMQ's MQTT plugins read "vhost:user" as a user in that vhost
  const username = config.vhost === "/" ? user : `${config.vhost}:${user}`;
  const random = Math.random().toString(16).slice(2, 10);
  client = mqtt.connect(config.web_mqtt, {
    username,
    password,
    clientId: `dashboard-${user}-${random}`,
    protocolVersion: 4, // MQTT 3.1.1, which RabbitMQ 3.x and WarrenMQ both speak
    clean: true,
    reconnectPeriod: 0, // a refused login is final; reconnecting would just be refused again
    connectTimeout: 10_000,
  });
  const current = client;
  current.on("connect", () => {
    setStatus(`Logged in as ${user}`);
    $("login").hidden = true;
    $("logout").hidden = false;
    const devices = $("devices");
    devices.replaceChildren(...config.devices.map(deviceCard));
    devices.hidden = false;
    $("log").replaceChildren();
    $("log-section").hidden = false;
    for (const device of config.devices) {
      // one SUBSCRIBE per device, so the broker answers for each one on its own
      current.subscribe(`devices/${device}/telemetry`, { qos: 0 }, (err) => {
        const card = document.querySelector(`article.device[data-device="${CSS.escape(device)}"]`);
        const access = card.querySelector(".access");
        if (err) {
          card.classList.add("denied");
          access.textContent = "no access";
        } else {
          card.classList.add("live");
          access.textContent = "live";
        }
      });
    }
  });
  current.on("message", showReading);
  current.on("error", (err) => {
    // a refused CONNECT: "Connection refused: Not authorized" (wrong password) and the like
    $("login-error").textContent = err.message;
    setStatus("Not logged in");
    current.end(true);
  });
  current.on("close", () => {
    if (client === current && $("login").hidden) setStatus(`Disconnected (was ${user})`); // not by logout()
  });
}

function logout() {
  if (client) client.end();
  client = null;
  $("devices").hidden = true;
  $("log-section").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("password").value = "";
  setStatus("Not logged in");
}

$("login").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
