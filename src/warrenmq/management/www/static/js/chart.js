// Live charts of rates and depths on uPlot (vendored, static/vendor/uplot).
//
// Theory of operation: a page polls the API (ctx.every) and pushes what it read
// with push(tMs, values), values keyed by each series' key. A series marked
// {counter: true} is a count that only grows (message_stats.publish, ...): the
// chart plots its change per second between two pushes, so a page polling every
// second gets one-second rates, where RabbitMQ's UI samples every five. Other
// series are plotted as given (depths). The chart keeps the last ten minutes;
// a count that went down (a vhost deleted, the broker restarted) starts over
// with a gap instead of a negative rate. Next to the plot a legend lists each
// series with its latest value as text, which is what screen readers and the
// tests read (the canvas is aria-hidden). The width follows the container
// (ResizeObserver), so the chart fits a 375 px screen.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { h, fmtNum, fmtRate } from './dom.js';

const WINDOW_S = 600;
const COLORS = ['#b4461f', '#1f5fb4', '#1e7a3c', '#8a3ab9', '#9a6a00', '#c2185b', '#00838f', '#5b6475'];

/**
 * rateChart(container, [{label, key, counter, color}], {height, unit: 'rate'|'count', title})
 * -> {push(tMs, values), clear(), destroy()}.
 * unit 'rate' (the default when any series is a counter) formats values as '12/s'.
 */
export function rateChart(container, series, opts = {}) {
  const unit = opts.unit || (series.some((s) => s.counter) ? 'rate' : 'count');
  const fmt = unit === 'rate' ? fmtRate : fmtNum;
  const height = opts.height || 200;
  const xs = [];
  const ys = series.map(() => []);
  const last = {}; // counter key -> [tMs, value]

  const plotEl = h('div', { class: 'chart-plot', 'aria-hidden': 'true' });
  const legendItems = series.map((s, i) => {
    const value = h('span', { class: 'chart-value', dataset: { key: s.key } }, '');
    const swatch = h('span', { class: 'chart-swatch' });
    swatch.style.background = s.color || COLORS[i % COLORS.length];
    return { value, el: h('li', { dataset: { key: s.key } }, swatch, h('span', { class: 'chart-label' }, s.label), ' ', value) };
  });
  const legend = h('ul', { class: 'chart-legend', 'aria-label': opts.title ? `${opts.title}, latest values` : 'Latest values' },
    legendItems.map((x) => x.el));
  const box = h('figure', { class: 'chart' },
    opts.title ? h('figcaption', {}, opts.title) : null, plotEl, legend);
  container.appendChild(box);

  const width = () => Math.max(200, Math.floor(plotEl.clientWidth || container.clientWidth || 600));
  const plot = new uPlot({
    width: width(),
    height,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(unit === 'rate' ? 1 : 5, max * 1.1)] } },
    axes: [
      { stroke: '#5b6475', grid: { stroke: '#e6e8ee' } },
      { stroke: '#5b6475', grid: { stroke: '#e6e8ee' }, size: 60, values: (u, vals) => vals.map((v) => (unit === 'rate' ? fmtRate(v) : fmtNum(v))) },
    ],
    series: [{}, ...series.map((s, i) => ({
      label: s.label,
      stroke: s.color || COLORS[i % COLORS.length],
      width: 2,
      spanGaps: false,
      points: { show: false },
    }))],
  }, [xs, ...ys], plotEl);

  const resize = new ResizeObserver(() => plot.setSize({ width: width(), height }));
  resize.observe(plotEl);

  return {
    push(tMs, values) {
      const row = series.map((s) => {
        const v = values[s.key];
        if (v === undefined || v === null) return null;
        if (!s.counter) return v;
        const prev = last[s.key];
        last[s.key] = [tMs, v];
        if (!prev || tMs <= prev[0] || v < prev[1]) return null;
        return ((v - prev[1]) * 1000) / (tMs - prev[0]);
      });
      const counterOnly = series.every((s) => s.counter);
      if (counterOnly && row.every((v) => v === null) && xs.length === 0) {
        return; // the first sample of counters: nothing to plot yet
      }
      xs.push(tMs / 1000);
      row.forEach((v, i) => ys[i].push(v));
      while (xs.length && xs[0] < tMs / 1000 - WINDOW_S) {
        xs.shift();
        ys.forEach((y) => y.shift());
      }
      row.forEach((v, i) => { legendItems[i].value.textContent = v === null ? '' : fmt(v); });
      plot.setData([xs, ...ys]);
    },
    clear() {
      xs.length = 0;
      ys.forEach((y) => { y.length = 0; });
      plot.setData([xs, ...ys]);
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
      box.remove();
    },
  };
}
