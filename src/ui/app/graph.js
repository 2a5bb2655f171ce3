// The Graph tab: a uPlot chart of a range query's matrix (one line per series, stacked optionally),
// a legend with each series' labels (click: show only that series, again: all), a hover tooltip
// with the nearest series' value, and zoom by dragging across a time span. uPlot is a chunk of its
// own: pages without a graph never fetch it, and a range query fetches it while the query runs
// (loadUPlot).
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, colour, formatLabels, formatValue, formatTime, formatTimeMs } from './util.js';

let uplot; // the one fetch of the uPlot chunk
export const loadUPlot = () => (uplot ||= import('uplot').then((m) => m.default));

// The query's steps as the x axis, every series' values aligned to it (null where absent).
export function alignSeries(result, meta) {
  const { start, end, step } = meta;
  const n = Math.floor((end - start) / step + 1e-9) + 1;
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) xs[i] = start + i * step;
  const ys = result.map((s) => {
    const a = new Array(n).fill(null);
    for (const [t, v] of s.values) {
      const i = Math.round((t - start) / step);
      if (i >= 0 && i < n) a[i] = parseFloat(v);
    }
    return a;
  });
  return { xs, ys };
}

function stack(ys) {
  const out = [];
  let acc = null;
  for (const a of ys) {
    acc = a.map((v, i) => (v === null ? (acc ? acc[i] : null) : v + (acc && acc[i] !== null ? acc[i] : 0)));
    out.push(acc);
  }
  return out;
}

export function Graph({ res, meta, stacked, onZoom }) {
  const host = useRef(null);
  const plot = useRef(null);
  const [tip, setTip] = useState(null);
  const [only, setOnly] = useState(-1);
  const [failed, setFailed] = useState(null);
  const result = res.data.resultType === 'matrix' ? res.data.result : [];
  const aligned = useRef(null);
  const zoomRef = useRef(onZoom);
  zoomRef.current = onZoom;

  useEffect(() => {
    setOnly(-1);
    let live = true;
    const onResize = () => plot.current && plot.current.setSize({ width: Math.max(host.current.clientWidth, 300), height: 400 });
    loadUPlot().then((uPlot) => live && draw(uPlot), (e) => live && setFailed(`The chart library could not be loaded: ${e.message}`));
    window.addEventListener('resize', onResize);
    return () => {
      live = false;
      window.removeEventListener('resize', onResize);
      if (plot.current) plot.current.destroy();
      plot.current = null;
    };
  }, [res, stacked]);

  const draw = (uPlot) => {
    const { xs, ys } = (aligned.current = alignSeries(result, meta));
    const drawn = stacked ? stack(ys) : ys;
    // Stacked: the tallest (cumulative) band is drawn first so every series stays visible.
    const order = stacked ? drawn.map((_, i) => drawn.length - 1 - i) : drawn.map((_, i) => i);
    const series = [{}];
    for (const i of order) {
      series.push({ label: String(i), stroke: colour(i), width: 1, spanGaps: false, points: { show: false },
        fill: stacked ? colour(i) : undefined });
    }
    const opts = {
      width: Math.max(host.current.clientWidth, 300),
      height: 400,
      legend: { show: false },
      series,
      scales: { x: { time: true } },
      // Times in UTC, 24-hour, as the time inputs: "HH:MM" within a day, "MM-DD HH:MM" beyond.
      axes: [{ values: (u, ts) => ts.map((t) => (xs[xs.length - 1] - xs[0] > 86400 ? formatTime(t).slice(5, 16)
        : formatTime(t).slice(11, xs[xs.length - 1] - xs[0] < 600 ? 19 : 16))) },
      { size: 70, values: (u, vals) => vals.map(formatValue) }],
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const from = u.posToVal(u.select.left, 'x'), to = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ width: 0, height: 0 }, false);
          zoomRef.current(from, to);
        }],
        setCursor: [(u) => {
          const idx = u.cursor.idx;
          if (idx === null || idx === undefined || u.cursor.left < 0) return setTip(null);
          // The series whose point at this step is nearest the pointer vertically.
          let best = -1, bestD = Infinity;
          for (let s = 1; s < u.series.length; s++) {
            if (!u.series[s].show) continue;
            const v = u.data[s][idx];
            if (v === null || v === undefined) continue;
            const d = Math.abs(u.valToPos(v, 'y') - u.cursor.top);
            if (d < bestD) { bestD = d; best = s; }
          }
          if (best < 0) return setTip(null);
          const si = order[best - 1];
          setTip({ left: u.cursor.left, top: u.cursor.top, t: xs[idx], si, value: aligned.current.ys[si][idx] });
        }],
      },
    };
    plot.current = new uPlot(opts, [xs, ...order.map((i) => drawn[i])], host.current);
  };

  const toggle = (i) => {
    const u = plot.current;
    if (!u) return;
    const next = only === i ? -1 : i;
    setOnly(next);
    u.batch(() => {
      for (let s = 1; s < u.series.length; s++) u.setSeries(s, { show: next < 0 || +u.series[s].label === next });
    });
  };

  if (res.data.resultType !== 'matrix') {
    return html`<div class="alert warning">The graph needs a range vector result; this query returned a ${res.data.resultType}.</div>`;
  }
  return html`<div class="graph">
    ${failed && html`<div class="alert error">${failed}</div>`}
    <div class="chart-wrap">
      <div class="chart" ref=${host}></div>
      ${tip && html`<div class="tooltip" style=${`left:${tip.left + 60}px;top:${tip.top + 10}px`}>
        <div class="tip-time">${formatTimeMs(tip.t)}</div>
        <div class="tip-series"><span class="swatch" style=${`background:${colour(tip.si)}`}></span>
          <span class="tip-labels">${formatLabels(result[tip.si].metric)}</span></div>
        <div class="tip-value">value: <b>${formatValue(tip.value)}</b></div>
      </div>`}
    </div>
    ${result.length === 0 && html`<div class="empty">Empty query result</div>`}
    <div class="legend">
      ${result.map((s, i) => html`<div class=${'legend-item' + (only >= 0 && only !== i ? ' faded' : '')} onClick=${() => toggle(i)}>
        <span class="swatch" style=${`background:${colour(i)}`}></span><span class="legend-labels">${formatLabels(s.metric)}</span>
      </div>`)}
    </div>
  </div>`;
}
