// Small helpers shared by the pages: durations, times, label formatting, the API client.
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

// The server's config for this page (ui.c): component, pages, prefix, version, adminDisabled, and on a
// querier with --query.enforce-tenancy tenancy: {header, defaultTenant}.
export const cfg = JSON.parse(document.getElementById('strata-config').textContent);
// Links and API calls go under the server's --web.external-prefix / --web.route-prefix ("" or "/x").
export const prefix = cfg.prefix || '';

// The tenant the user gave (navbar field, shown when the querier enforces tenancy), kept in localStorage:
// every API call sends it in the querier's tenant header; none ("") leaves the querier's default tenant.
const TENANT_KEY = 'strata.tenant';
const store = (f) => {
  try {
    return f(window.localStorage);
  } catch (e) {
    return null; // storage disabled: the tenant lasts until the page is left
  }
};
let tenant = (cfg.tenancy && store((s) => s.getItem(TENANT_KEY))) || '';
const tenantSubs = new Set();

export const tenantHeaders = () => (tenant ? { [cfg.tenancy.header]: tenant } : {});

export function setTenant(t) {
  tenant = t.trim();
  store((s) => (tenant ? s.setItem(TENANT_KEY, tenant) : s.removeItem(TENANT_KEY)));
  tenantSubs.forEach((f) => f(tenant));
}

// The tenant, re-rendering the caller when it changes.
export function useTenant() {
  const [t, set] = useState(tenant);
  useEffect(() => {
    tenantSubs.add(set);
    set(tenant);
    return () => tenantSubs.delete(set);
  }, []);
  return t;
}

const UNITS = { y: 365 * 86400, w: 7 * 86400, d: 86400, h: 3600, m: 60, s: 1, ms: 0.001 };

// Prometheus durations ("1h30m", "90d", "500ms") to seconds; null if invalid.
export function parseDuration(s) {
  s = (s || '').trim();
  if (!s) return null;
  const re = /(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)/y;
  let total = 0;
  let m;
  while (re.lastIndex < s.length) {
    const at = re.lastIndex;
    if (!(m = re.exec(s)) || m.index !== at) return null;
    total += parseFloat(m[1]) * UNITS[m[2]];
  }
  return total > 0 ? total : null;
}

export function formatDuration(sec) {
  let ms = Math.round(sec * 1000);
  if (ms <= 0) return '0s';
  let out = '';
  for (const [u, f] of [['y', 31536000000], ['w', 604800000], ['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000], ['ms', 1]]) {
    if (ms >= f) {
      out += Math.floor(ms / f) + u;
      ms %= f;
    }
  }
  return out;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// "YYYY-MM-DD HH:MM:SS" in UTC, the format of Prometheus's g0.end_input / g0.moment_input.
export function formatTime(sec) {
  const d = new Date(sec * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

export function formatTimeMs(sec) {
  const ms = Math.round(sec * 1000) % 1000;
  return formatTime(Math.floor(sec)) + (ms ? '.' + pad(ms, 3) : '');
}

// Seconds since the epoch, or null.
export function parseTime(s) {
  s = (s || '').trim();
  if (!s) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?Z?$/.exec(s);
  if (m) {
    const t = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
    return isNaN(t) ? null : t / 1000 + (m[7] ? parseFloat('0.' + m[7]) : 0);
  }
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s);
  return null;
}

export function formatLabels(metric) {
  const name = metric.__name__ || '';
  const rest = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}=${JSON.stringify(metric[k])}`);
  return rest.length || !name ? `${name}{${rest.join(', ')}}` : name;
}

// GET/POST an API path (with the tenant header); resolves to the envelope ({status, data, warnings}) or throws an Error whose
// message is the API's error (errorType: error), as Prometheus's UI shows it.
export async function api(path, params, opts = {}) {
  const qs = params ? new URLSearchParams(params).toString() : '';
  const init = { method: opts.method || 'GET', signal: opts.signal, headers: tenantHeaders() };
  let url = prefix + path;
  if (init.method === 'POST') {
    init.body = qs;
    init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
  } else if (qs) {
    url += '?' + qs;
  }
  const resp = await fetch(url, init);
  let body;
  try {
    body = await resp.json();
  } catch (e) {
    throw new Error(`${resp.status} ${resp.statusText}: the response is not JSON`);
  }
  if (body.status !== 'success') {
    const err = new Error(body.error || `${resp.status} ${resp.statusText}`);
    err.errorType = body.errorType;
    throw err;
  }
  return body;
}

// A fixed palette (distinct hues), cycled; the same series index always gets the same colour.
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#393b79', '#e6550d', '#31a354', '#843c39', '#756bb1', '#636363', '#bd9e39', '#3182bd', '#e7298a', '#66a61e'];
export const colour = (i) => PALETTE[i % PALETTE.length];

export function formatValue(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e15 || a < 1e-4)) return v.toExponential(3);
  return String(Math.round(v * 1e6) / 1e6);
}
