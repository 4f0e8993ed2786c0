/* The object pages' charts: one of depths (ready/unacked/total) and one of rates, on chart.js.
 *
 * Theory of operation: the page polls its object (every second) and hands the JSON to push(); depths
 * are read from the object's own keys; rates are the message_stats counts pushed as counters, so
 * chart.js plots their change per second between two polls (one-second rates, where RabbitMQ's UI
 * samples every five). A count the object has not started yet (no deliver before the first
 * delivery) is pushed as 0. With statistics off there are no counts: only the depth chart is made.
 */
import {rateChart} from './chart.js';

export function charts(container, statsOn, {depth = [], rates = [], ratesFrom = (x) => x.message_stats}) {
  const made = [];
  if (depth.length) {
    const c = rateChart(container, depth, {title: 'Messages', unit: 'count', height: 160});
    made.push((t, x) => c.push(t, Object.fromEntries(depth.map((s) => [s.key, x[s.key] ?? null]))));
  }
  if (statsOn && rates.length) {
    const c = rateChart(container, rates.map((s) => ({...s, counter: true})), {title: 'Message rates', height: 160});
    made.push((t, x) => {
      const ms = ratesFrom(x) || {};
      c.push(t, Object.fromEntries(rates.map((s) => [s.key, ms[s.key] ?? 0])));
    });
  }
  return {push(x) { const t = Date.now(); for (const p of made) p(t, x); }};
}
