// The bucket block viewer (/blocks: every block in the bucket, /loaded: the blocks this process has
// loaded): one row per stream (external labels) and resolution, every block a bar on a shared time
// axis coloured by compaction level; a click shows its meta and, unless admin operations are
// disabled, marks it for deletion or no-compaction (POST /api/v1/blocks/mark).
import { useState } from 'preact/hooks';
import { html, api, formatLabels, formatTime, formatDuration } from './util.js';
import { useAPI, Loading } from './pages.js';

const LEVEL_COLOURS = ['#9ecae1', '#6baed6', '#4292c6', '#2171b5', '#08519c', '#08306b'];
export const levelColour = (l) => LEVEL_COLOURS[Math.min(Math.max(l, 1), LEVEL_COLOURS.length) - 1];
const RES = { 0: 'raw', 300000: '5m', 3600000: '1h' };
const resName = (r) => RES[r] || formatDuration(r / 1000);

export function blockSize(b) {
  return ((b.thanos && b.thanos.files) || []).reduce((n, f) => n + (f.size_bytes || 0), 0);
}

function bytes(n) {
  if (!n) return 'unknown';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

// Rows: blocks grouped by external labels and resolution, sorted by labels then resolution.
export function blockRows(blocks) {
  const rows = new Map();
  for (const b of blocks) {
    const labels = (b.thanos && b.thanos.labels) || {};
    const res = (b.thanos && b.thanos.downsample && b.thanos.downsample.resolution) || 0;
    const key = formatLabels(labels) + '\u0000' + res;
    if (!rows.has(key)) rows.set(key, { labels, res, blocks: [] });
    rows.get(key).blocks.push(b);
  }
  return [...rows.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, r]) => {
    r.blocks.sort((x, y) => x.minTime - y.minTime);
    return r;
  });
}

function Detail({ b, marks, cfg, onMarked }) {
  const [detail, setDetail] = useState('');
  const [msg, setMsg] = useState(null);
  const mark = async (action) => {
    try {
      await api('/api/v1/blocks/mark', { id: b.ulid, action, detail }, { method: 'POST' });
      setMsg({ ok: true, text: `${action === 'DELETION' ? 'Deletion' : 'No-compaction'} mark written for ${b.ulid}` });
      onMarked();
    } catch (e) {
      setMsg({ ok: false, text: e.message });
    }
  };
  const t = b.thanos || {};
  const m = marks[b.ulid] || {};
  return html`<div class="block-detail" data-ulid=${b.ulid}>
    <h3>Block <span class="ulid">${b.ulid}</span></h3>
    <table class="data"><tbody>
      <tr><th>Start time</th><td>${formatTime(b.minTime / 1000)} UTC (${b.minTime})</td></tr>
      <tr><th>End time</th><td>${formatTime(b.maxTime / 1000)} UTC (${b.maxTime})</td></tr>
      <tr><th>Duration</th><td>${formatDuration((b.maxTime - b.minTime) / 1000)}</td></tr>
      <tr><th>Series</th><td class="num-series">${(b.stats && b.stats.numSeries) || 0}</td></tr>
      <tr><th>Samples</th><td class="num-samples">${(b.stats && b.stats.numSamples) || 0}</td></tr>
      <tr><th>Chunks</th><td class="num-chunks">${(b.stats && b.stats.numChunks) || 0}</td></tr>
      <tr><th>Compaction level</th><td class="level">${(b.compaction && b.compaction.level) || 1}</td></tr>
      <tr><th>Resolution</th><td class="resolution">${resName((t.downsample && t.downsample.resolution) || 0)}</td></tr>
      <tr><th>Source</th><td class="source">${t.source || ''}</td></tr>
      <tr><th>Size</th><td>${bytes(blockSize(b))}</td></tr>
      <tr><th>Labels</th><td>${formatLabels(t.labels || {})}</td></tr>
      <tr><th>Sources</th><td class="sources">${((b.compaction && b.compaction.sources) || []).map((s) => html`<div>${s}</div>`)}</td></tr>
      ${m.deletion && html`<tr><th>Deletion mark</th><td class="marked-deletion">${formatTime(m.deletion)} UTC</td></tr>`}
      ${m.no_compact && html`<tr><th>No-compact mark</th><td class="marked-no-compact">${formatTime(m.no_compact)} UTC</td></tr>`}
    </tbody></table>
    ${cfg.adminDisabled
      ? html`<div class="empty">Marking is disabled (--disable-admin-operations).</div>`
      : html`<div class="mark">
          <input class="mark-detail" placeholder="Detail (why)" value=${detail} onInput=${(e) => setDetail(e.target.value)} />
          <button class="mark-deletion" onClick=${() => mark('DELETION')}>Mark for deletion</button>
          <button class="mark-no-compaction" onClick=${() => mark('NO_COMPACTION')}>Mark no-compaction</button>
        </div>`}
    ${msg && html`<div class=${'alert ' + (msg.ok ? 'success' : 'error')}>${msg.text}</div>`}
  </div>`;
}

export function BlocksPage({ view, cfg }) {
  const [st, reload] = useAPI('/api/v1/blocks', { view });
  const [sel, setSel] = useState(null);
  const [filter, setFilter] = useState('');
  return html`<div class="page blocks-page">
    <h2>${view === 'loaded' ? 'Loaded blocks' : 'Blocks in the bucket'}</h2>
    <${Loading} st=${st}>${(d) => {
      const all = d.blocks || [];
      const blocks = filter ? all.filter((b) => b.ulid.includes(filter.toUpperCase()) || formatLabels((b.thanos && b.thanos.labels) || {}).includes(filter)) : all;
      if (!all.length) return html`<div class="empty">No blocks${d.err ? '' : ' in the bucket'}.${d.err ? ' ' + d.err : ''}</div>`;
      const mint = Math.min(...blocks.map((b) => b.minTime)), maxt = Math.max(...blocks.map((b) => b.maxTime));
      const span = Math.max(maxt - mint, 1);
      const rows = blockRows(blocks);
      const selected = sel && all.find((b) => b.ulid === sel);
      return html`<div>
        <div class="blocks-toolbar">
          <input class="filter" placeholder="Filter by ULID or labels" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
          <span>${blocks.length} blocks · ${formatTime(mint / 1000)} – ${formatTime(maxt / 1000)} UTC
            ${d.refreshedAt ? ` · refreshed ${d.refreshedAt}` : ''}</span>
          <span class="level-key">${LEVEL_COLOURS.map((c, i) => html`<span class="swatch" style=${'background:' + c}></span>${i === 5 ? 'level 6+' : 'level ' + (i + 1)} `)}</span>
          <button class="refresh" onClick=${() => reload({ refresh: 'true' })}>Refresh</button>
        </div>
        ${d.err && html`<div class="alert warning">${d.err}</div>`}
        <div class="timeline">
          <div class="block-row axis"><div class="row-label">stream, resolution</div>
            <div class="row-track">${[0, 0.25, 0.5, 0.75, 1].map((f) => html`<span class="tick" style=${`left:${f * 100}%`}>${formatTime((mint + f * span) / 1000)}</span>`)}</div>
          </div>
          ${rows.map((r) => html`<div class="block-row">
            <div class="row-label" title=${formatLabels(r.labels)}>${d.label && r.labels[d.label] !== undefined
              ? `${d.label}=${r.labels[d.label]}` : formatLabels(r.labels)} <span class="res">${resName(r.res)}</span></div>
            <div class="row-track">${r.blocks.map((b) => {
              const level = (b.compaction && b.compaction.level) || 1;
              const left = ((b.minTime - mint) / span) * 100, width = Math.max(((b.maxTime - b.minTime) / span) * 100, 0.3);
              const m = (d.markers || {})[b.ulid] || {};
              return html`<div class=${'block' + (sel === b.ulid ? ' selected' : '') + (m.deletion ? ' deleted' : '')}
                data-ulid=${b.ulid} data-level=${level} title=${`${b.ulid} level ${level}`}
                style=${`left:${left}%;width:${width}%;background-color:${levelColour(level)}`} onClick=${() => setSel(b.ulid)}></div>`;
            })}</div>
          </div>`)}
        </div>
        ${selected && html`<${Detail} b=${selected} marks=${d.markers || {}} cfg=${cfg} onMarked=${() => reload()} />`}
      </div>`;
    }}<//>
  </div>`;
}
