// PromQL completion for the expression editor (code_editor.js, prism-code-editor's completion list): what
// the text before the cursor is in decides what is offered —
//   in a label matcher's value (`{job="ap`, `{job=`)          the label's values (for the metric, if named)
//   in a matcher list (`foo{`, `foo{a="b", `)                 label names (of the metric's series, if named)
//   in a grouping list (`by (`, `without (`, `on (`, ...)     label names
//   in a range (`[`)                                          durations
//   elsewhere, on a word                                      metric names, functions, aggregations, keywords
// Metric names, label names and values come from this server's own API (series of the last 12 hours, each
// list cached for five minutes); when a list arrives after the source was asked, the editor is asked to
// complete again. They are the tenant's (util.js): asked with its header, cached per tenant.
import { prefix, tenantHeaders } from './util.js';

// The querier's functions (src/promql/ast.c) with their argument types: v instant vector, m range vector,
// s scalar, t string; a trailing ? marks optional arguments.
const FUNCS = ('abs:v absent:v absent_over_time:m acos:v acosh:v asin:v asinh:v atan:v atanh:v avg_over_time:m ' +
  'ceil:v changes:m clamp:vss clamp_max:vs clamp_min:vs cos:v cosh:v count_over_time:m day_of_month:v? ' +
  'day_of_week:v? day_of_year:v? days_in_month:v? deg:v delta:m deriv:m exp:v floor:v histogram_count:v ' +
  'histogram_fraction:ssv histogram_quantile:sv histogram_sum:v holt_winters:mss hour:v? idelta:m increase:m ' +
  'irate:m label_join:vttt label_replace:vtttt last_over_time:m ln:v log10:v log2:v max_over_time:m ' +
  'min_over_time:m minute:v? month:v? pi: predict_linear:ms present_over_time:m quantile_over_time:sm rad:v ' +
  'rate:m resets:m round:vs? scalar:v sgn:v sin:v sinh:v sort:v sort_desc:v sqrt:v stddev_over_time:m ' +
  'stdvar_over_time:m sum_over_time:m tan:v tanh:v time: timestamp:v vector:s year:v?').split(' ');
const TYPES = { v: 'instant-vector', m: 'range-vector', s: 'scalar', t: 'string' };
const AGGS = 'sum min max avg group stddev stdvar count count_values bottomk topk quantile'.split(' ');
const KEYWORDS = 'by without on ignoring group_left group_right bool offset and or unless atan2 inf nan'.split(' ');

const STATIC = [
  ...FUNCS.map((f) => {
    const [name, args] = f.split(':');
    const types = args.replace('?', '').split('').map((c) => TYPES[c]);
    return { label: name, icon: 'function', detail: `(${types.join(', ')}${args.endsWith('?') ? '?' : ''})` };
  }),
  ...AGGS.map((a) => ({ label: a, icon: 'function', detail: 'aggregation' })),
  ...KEYWORDS.map((k) => ({ label: k, icon: 'keyword', detail: 'keyword' })),
];
const DURATIONS = ['1m', '5m', '10m', '30m', '1h', '6h', '12h', '1d', '1w', '30d', '1y'].map((d) => ({ label: d, icon: 'unit' }));

// The API's lists: tenant + url -> { at, list } once answered, { at, wait } while asked.
const cache = new Map();
const MAX_AGE = 5 * 60 * 1000;

// Names and values of series seen in the last 12 hours (as Prometheus's own editor looks back), the
// start rounded to 5 minutes so that the cache's URLs repeat.
const LOOKBACK = 12 * 3600;

function apiList(path, params, editor) {
  const now = Date.now();
  const start = Math.floor(now / 1000 / 300) * 300 - LOOKBACK;
  const url = prefix + path + '?' + new URLSearchParams({ ...params, start });
  const headers = tenantHeaders();
  const key = JSON.stringify(headers) + url;
  let e = cache.get(key);
  if (e && now - e.at > MAX_AGE) e = null;
  if (e?.list) return e.list;
  if (!e) {
    e = { at: now, wait: [] };
    cache.set(key, e);
    fetch(url, { headers })
      .then((r) => r.json())
      .then((j) => (e.list = j.status === 'success' && Array.isArray(j.data) ? j.data : []))
      .catch(() => (e.list = []))
      .then(() => e.wait.splice(0).forEach((f) => f()));
  }
  // Complete again once the answer is here, if the user is still where they were.
  const pos = editor.textarea.selectionStart, value = editor.value;
  const again = () => {
    if (editor.focused && editor.value === value && editor.textarea.selectionStart === pos) editor.extensions.autoComplete?.startQuery();
  };
  again.editor = editor;
  e.wait = e.wait.filter((f) => f.editor !== editor);
  e.wait.push(again);
  return null;
}

const matchParam = (metric) => (metric ? { 'match[]': metric } : null);

// What the text before the cursor is in: the innermost open bracket and, if in a quoted string, where
// it starts. Comments (# to the end of the line) and strings are skipped.
export function scan(before) {
  const stack = [];
  let str = null; // { q, at }
  for (let i = 0; i < before.length; i++) {
    const c = before[i];
    if (str) {
      if (c === '\\' && str.q !== '`') i++;
      else if (c === str.q) str = null;
    } else if (c === '"' || c === "'" || c === '`') str = { q: c, at: i };
    else if (c === '#') {
      const nl = before.indexOf('\n', i);
      if (nl < 0) return { stack, comment: true };
      i = nl;
    } else if (c === '(' || c === '{' || c === '[') stack.push({ c, at: i });
    else if (c === ')' || c === '}' || c === ']') stack.pop();
  }
  return { stack, str };
}

const IDENT = /[a-zA-Z_:][\w:]*$/;
const METRIC_BEFORE = /([a-zA-Z_:][\w:]*)\s*$/;

export function completionSource(ctx, editor) {
  const { before, pos, explicit } = ctx;
  const { stack, str, comment } = scan(before);
  if (comment) return null;
  const top = stack[stack.length - 1];
  if (top?.c === '{') {
    const metric = METRIC_BEFORE.exec(before.slice(0, top.at))?.[1];
    const inside = before.slice(top.at + 1, str ? str.at : pos);
    const m = /(?:^|,)\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*$/.exec(inside);
    if (str) {
      // a label value being typed, quoted
      if (!m) return null;
      const list = apiList(`/api/v1/label/${encodeURIComponent(m[1])}/values`, matchParam(metric), editor);
      return list && { from: str.at + 1, options: list.map((v) => ({ label: v, icon: 'constant' })) };
    }
    if (m) {
      // after the operator: a value, with its quotes
      const list = apiList(`/api/v1/label/${encodeURIComponent(m[1])}/values`, matchParam(metric), editor);
      return list && { from: pos, options: list.map((v) => ({ label: JSON.stringify(v), icon: 'constant' })) };
    }
    const word = /(?:^|[{,\s])([a-zA-Z_]\w*)?$/.exec(inside);
    if (!word) return null;
    const list = apiList('/api/v1/labels', matchParam(metric), editor);
    const names = list && list.filter((n) => n !== '__name__');
    return names && { from: pos - (word[1] || '').length, options: names.map((n) => ({ label: n, icon: 'property' })) };
  }
  if (str) return null;
  if (top?.c === '(' && /\b(by|without|on|ignoring|group_left|group_right)\s*$/.test(before.slice(0, top.at))) {
    const word = /(?:^|[(,\s])([a-zA-Z_]\w*)?$/.exec(before.slice(top.at));
    if (!word) return null;
    const list = apiList('/api/v1/labels', null, editor);
    return list && { from: pos - (word[1] || '').length, options: list.filter((n) => n !== '__name__').map((n) => ({ label: n, icon: 'property' })) };
  }
  if (top?.c === '[') {
    const word = /(?:^|[[:\s])(\w*)$/.exec(before.slice(top.at));
    return word && { from: pos - word[1].length, options: DURATIONS };
  }
  const word = IDENT.exec(before)?.[0] || '';
  if (!word && !explicit) return null;
  if (/[\d.]$/.test(before.slice(0, pos - word.length))) return null; // 1e3, 5m: a number, not a name
  const metrics = apiList('/api/v1/label/__name__/values', null, editor) || [];
  return { from: pos - word.length, options: [...STATIC, ...metrics.map((n) => ({ label: n, icon: 'variable', detail: 'metric' }))] };
}
