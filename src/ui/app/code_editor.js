// The PromQL expression editor: prism-code-editor (a text area under a highlighted copy of its text) with
// its PromQL grammar, bracket matching and closing, undo history and completion list; what it completes
// comes from promql_complete.js (functions, keywords, and metric names, label names and values from this
// server's own API); parse errors are marked where they are: the one @prometheus-io/lezer-promql finds
// as the text is typed, and the querier's own once a query is answered. A chunk of its own, fetched after
// the page's load event (editor.js).
import { useEffect, useRef } from 'preact/hooks';
import { createEditor } from 'prism-code-editor';
import { Token } from 'prism-code-editor/prism';
import 'prism-code-editor/prism/languages/promql';
import 'prism-code-editor/languages/promql';
import { matchBrackets } from 'prism-code-editor/match-brackets';
import { highlightBracketPairs } from 'prism-code-editor/highlight-brackets';
import { editorCommands, editHistory, defaultKeymap } from 'prism-code-editor/commands';
import { cursorPosition } from 'prism-code-editor/cursor';
import { autoComplete, registerCompletions, fuzzyFilter } from 'prism-code-editor/autocomplete';
import { parser } from '@prometheus-io/lezer-promql';
import css from './code_editor.css?inline';
import { completionSource } from './promql_complete.js';
import { html } from './util.js';

let styled = false;
function addStyle() {
  if (styled) return;
  styled = true;
  const s = document.createElement('style');
  s.textContent = css;
  document.head.append(s);
}

// Which editor a completion source runs for (the source gets the editor; the remote lists ask it to
// complete again when they arrive).
registerCompletions(['promql'], { sources: [completionSource] });

// 'invalid parameter "query": 1:12: parse error: ...' (line:column of the querier's parser) to a range of
// the text.
export function errorRange(text, message) {
  const m = /(?:^|: )(\d+):(\d+): parse error/.exec(message || '');
  if (!m) return null;
  const lines = text.split('\n');
  const line = +m[1], col = +m[2];
  if (line < 1 || line > lines.length) return null;
  let start = 0;
  for (let i = 0; i < line - 1; i++) start += lines[i].length + 1;
  const len = lines[line - 1].length;
  if (!len) return null;
  // Past the end ("unexpected end of input"): the line's last character.
  const from = start + Math.min(Math.max(col - 1, 0), len - 1);
  return { from, to: from + 1 };
}

// The first syntax error lezer-promql's parser finds (an error node), as one character of the text.
export function syntaxError(text) {
  if (!text.trim()) return null;
  let at = -1;
  parser.parse(text).iterate({
    enter: (n) => {
      if (at >= 0) return false;
      if (n.type.isError) at = n.from;
    },
  });
  if (at < 0) return null;
  // An error at the end (the text stops too early) marks the last character that is not a space.
  if (at >= text.length) at = text.trimEnd().length - 1;
  return { from: Math.max(at, 0), to: Math.max(at, 0) + 1 };
}

// Wraps [from, to) of a token stream in 'lint-error' tokens (splitting strings and tokens at the ends).
function markRange(tokens, from, to, pos = 0) {
  const out = [];
  for (const t of tokens) {
    const len = t.length;
    const end = pos + len;
    if (end <= from || pos >= to) out.push(t);
    else if (typeof t === 'string') {
      const a = Math.max(from - pos, 0), b = Math.min(to - pos, len);
      if (a) out.push(t.slice(0, a));
      const mid = t.slice(a, b);
      out.push(new Token('lint-error', mid, mid));
      if (b < len) out.push(t.slice(b));
    } else {
      t.content = markRange(typeof t.content === 'string' ? [t.content] : t.content, from, to, pos);
      out.push(t);
    }
    pos = end;
  }
  return out;
}

export function CodeEditor({ value, selection, focus, onChange, onExecute, error }) {
  const host = useRef(null);
  const ed = useRef(null);
  const cb = useRef({});
  cb.current = { onChange, onExecute };
  const serverError = useRef(null); // the querier's parse error and the text it was for

  useEffect(() => {
    addStyle();
    const run = (editor) => {
      cb.current.onExecute(editor.value);
      return true;
    };
    // Enter runs the query (the completion list, when open, takes Enter first: it picks the item);
    // Shift+Enter inserts a newline; Tab is left to move the focus.
    const keys = { ...defaultKeymap, Enter: run };
    delete keys.Tab;
    delete keys['8+Tab'];
    const editor = (ed.current = createEditor(
      host.current,
      { language: 'promql', value, tabSize: 2, wordWrap: true, lineNumbers: false },
      matchBrackets(),
      highlightBracketPairs(),
      editHistory(),
      editorCommands(keys, ['""', "''", '``', '()', '[]', '{}']),
      cursorPosition(),
      autoComplete({ filter: fuzzyFilter, closeOnBlur: true })
    ));
    // Escape closes the completion list but does not take the focus away (prism-code-editor blurs on
    // Escape so that a Tab-capturing editor can be left; this one leaves Tab alone).
    editor.keyCommandMap.Escape = null;
    const ta = editor.textarea;
    ta.setAttribute('placeholder', 'Expression (press Shift+Enter for newlines)');
    ta.setAttribute('spellcheck', 'false');
    ta.setAttribute('aria-label', 'Expression');
    editor.on('tokenize', (tokens, _lang, text) => {
      const se = serverError.current;
      const r = (se && se.text === text && errorRange(text, se.msg)) || syntaxError(text);
      ta.toggleAttribute('aria-invalid', !!r);
      if (r) tokens.splice(0, tokens.length, ...markRange(tokens, r.from, r.to));
    });
    let last = value;
    editor.on('update', (v) => {
      if (v === last) return;
      last = v;
      cb.current.onChange(v);
    });
    if (selection != null) ta.setSelectionRange(selection, selection);
    if (focus) ta.focus();
    return () => editor.remove();
  }, []);

  useEffect(() => {
    if (!ed.current || (serverError.current?.msg || null) === (error || null)) return;
    serverError.current = error ? { msg: error, text: ed.current.value } : null;
    ed.current.update();
  }, [error]);

  return html`<div class="editor" ref=${host}></div>`;
}
