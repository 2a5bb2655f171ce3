// The PromQL expression editor: CodeMirror 6 with @prometheus-io/codemirror-promql (highlighting,
// completion of functions, metric names, label names and values from this server's own API, and the
// client-side linter), plus the server parser's error marked at its position. A chunk of its own, fetched
// after the page's first paint (editor.js).
import { useEffect, useRef } from 'preact/hooks';
import { EditorView, keymap, placeholder, highlightSpecialChars, drawSelection } from '@codemirror/view';
import { EditorState, Prec, StateEffect } from '@codemirror/state';
import { standardKeymap, history, historyKeymap, insertNewlineAndIndent } from '@codemirror/commands';
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap, completionStatus } from '@codemirror/autocomplete';
import { bracketMatching, syntaxHighlighting, HighlightStyle } from '@codemirror/language';
import { lintKeymap, linter } from '@codemirror/lint';
import { tags } from '@lezer/highlight';
import { PromQLExtension } from '@prometheus-io/codemirror-promql';
import { html, prefix } from './util.js';

const highlight = HighlightStyle.define([
  { tag: tags.number, color: '#09885a' },
  { tag: tags.string, color: '#a31515' },
  { tag: tags.keyword, color: '#008080', fontWeight: 'bold' },
  { tag: tags.function(tags.variableName), color: '#008080' },
  { tag: tags.labelName, color: '#800000' },
  { tag: tags.operator, color: '#af00db' },
  { tag: tags.modifier, color: '#af00db' },
  { tag: tags.paren, color: '#555' },
  { tag: tags.squareBracket, color: '#555' },
  { tag: tags.brace, color: '#555' },
  { tag: tags.invalid, color: 'red' },
  { tag: tags.comment, color: '#888', fontStyle: 'italic' },
]);

// Dispatched when the querier's parse error changes, so the lint source below runs again.
const serverErrorChanged = StateEffect.define();

// One completion client for the page: the metric and label lists are cached across panels.
let promql;
function promqlExtension() {
  if (!promql) {
    promql = new PromQLExtension().setComplete({
      remote: { url: window.location.origin + prefix, httpMethod: 'GET', cache: { maxAge: 5 * 60 * 1000 } },
    });
  }
  return promql;
}

// 'invalid parameter "query": 1:12: parse error: ...' (line:column of the querier's parser) to a
// document offset range.
export function errorRange(doc, message) {
  const m = /(?:^|: )(\d+):(\d+): parse error/.exec(message || '');
  if (!m) return null;
  const line = +m[1], col = +m[2];
  if (line < 1 || line > doc.lines) return null;
  const l = doc.line(line);
  // Past the end ("unexpected end of input"): the line's last character.
  const from = Math.max(Math.min(l.from + Math.max(col - 1, 0), l.to - 1), l.from);
  return { from, to: Math.min(from + 1, l.to) };
}

export function CodeEditor({ value, selection, focus, onChange, onExecute, error }) {
  const host = useRef(null);
  const view = useRef(null);
  const cb = useRef({});
  cb.current = { onChange, onExecute };
  const serverError = useRef(null); // the querier's parse error for the current text

  useEffect(() => {
    const run = () => {
      cb.current.onExecute(view.current.state.doc.toString());
      return true;
    };
    view.current = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: value,
        selection: selection ? { anchor: Math.min(selection, value.length) } : undefined,
        extensions: [
          highlightSpecialChars(),
          history(),
          drawSelection(),
          bracketMatching(),
          closeBrackets(),
          autocompletion(),
          syntaxHighlighting(highlight),
          placeholder('Expression (press Shift+Enter for newlines)'),
          EditorView.lineWrapping,
          promqlExtension().asExtension(),
          // A second lint source next to codemirror-promql's: the querier's own parse error, marked at
          // the position it names until the text changes.
          linter(
            (v) => {
              const r = serverError.current && errorRange(v.state.doc, serverError.current);
              return r ? [{ ...r, severity: 'error', message: serverError.current, source: 'querier' }] : [];
            },
            { delay: 0, needsRefresh: (u) => u.transactions.some((tr) => tr.effects.some((e) => e.is(serverErrorChanged))) }
          ),
          Prec.highest(
            keymap.of([
              // Enter runs the query unless the completion list is open (then it picks the item).
              { key: 'Enter', run: (v) => (completionStatus(v.state) === 'active' ? false : run()) },
              { key: 'Shift-Enter', run: insertNewlineAndIndent },
            ])
          ),
          keymap.of([...closeBracketsKeymap, ...standardKeymap, ...historyKeymap, ...completionKeymap, ...lintKeymap]),
          EditorView.updateListener.of((u) => {
            if (!u.docChanged) return;
            serverError.current = null;
            cb.current.onChange(u.state.doc.toString());
          }),
        ],
      }),
    });
    if (focus) view.current.focus();
    return () => view.current.destroy();
  }, []);

  useEffect(() => {
    serverError.current = error || null;
    if (view.current) view.current.dispatch({ effects: serverErrorChanged.of(null) });
  }, [error]);

  return html`<div class="editor" ref=${host}></div>`;
}
