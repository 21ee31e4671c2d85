/*
 * report.c: the standalone MT-bench results page (see report.h). The page
 * is one static template (HTML, CSS, a small script) with the data spliced
 * in; the script draws the chart as inline SVG and fills the tables and the
 * browser from the data.
 */
#include "eval/report.h"
#include "eval/jsonl.h"
#include "base/fc_base.h"
#include "base/file.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char page_head[] =
"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
"<title>MT-bench results</title>\n<style>\n"
"body{font-family:system-ui,sans-serif;margin:0;padding:16px 24px;color:#1d2330;background:#f6f7f9}\n"
"h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}\n"
".sub{color:#5b6475;margin-bottom:12px}\n"
"table{border-collapse:collapse;background:#fff;margin:6px 0}\n"
"th,td{border:1px solid #d8dce3;padding:4px 10px;text-align:right}th{background:#eef1f5}\n"
"td:first-child,th:first-child{text-align:left}\n"
"#chart svg{background:#fff;border:1px solid #d8dce3}\n"
".row{display:flex;gap:12px;flex-wrap:wrap}.col{flex:1 1 420px;min-width:300px}\n"
".box{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:8px 12px;margin:6px 0;"
"white-space:pre-wrap;overflow-wrap:anywhere}\n"
".lab{font-weight:600;color:#33415c;margin-top:10px}\n"
"select{font-size:14px;padding:2px 4px;margin-right:10px;max-width:100%}\n"
".tabs button{font-size:14px;padding:6px 14px;margin-right:4px;border:1px solid #b9c0cc;background:#fff;"
"border-radius:4px;cursor:pointer}.tabs button.on{background:#33415c;color:#fff}\n"
".muted{color:#7a8294}\n"
"</style></head><body>\n"
"<h1>MT-bench results</h1><div class=\"sub\" id=\"sub\"></div>\n"
"<h2>Score per category</h2><div id=\"chart\"></div>\n"
"<h2>Single-answer grading</h2><div id=\"single\"></div>\n"
"<h2>Pairwise comparison</h2><div id=\"pair\"></div>\n"
"<h2>Questions, answers and judgments</h2>\n"
"<div class=\"tabs\"><button id=\"tab-single\" class=\"on\">Single answer grading</button>"
"<button id=\"tab-pair\">Pairwise comparison</button></div>\n"
"<p><label>Category <select id=\"cat\"></select></label><label>Question <select id=\"q\"></select></label></p>\n"
"<p><label>Model A <select id=\"ma\"></select></label><label id=\"mbl\">Model B <select id=\"mb\"></select></label></p>\n"
"<div id=\"browser\"></div>\n"
"<script id=\"data\" type=\"application/json\">";

static const char page_tail[] =
"</script>\n<script>\n"
"'use strict';\n"
"const D = JSON.parse(document.getElementById('data').textContent);\n"
"const $ = id => document.getElementById(id);\n"
"function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined && text !== null)"
" e.textContent = String(text); if (cls) e.className = cls; return e; }\n"
"function fmt(x, d) { return (x === null || x === undefined || isNaN(x)) ? '-' : Number(x).toFixed(d); }\n"
"const cats = [...new Set(D.questions.map(q => q.category))];\n"
"const qById = {}; D.questions.forEach(q => qById[q.question_id] = q);\n"
"const models = Object.keys(D.answers).sort();\n"
"$('sub').textContent = 'bench ' + D.bench + ', judge ' + D.judge + ', ' + D.questions.length + ' questions, '"
" + models.length + ' models, ' + D.single.length + ' single and ' + D.pair.length + ' pairwise judgments';\n"
"function table(head, rows) { const t = el('table'); const h = el('tr'); head.forEach(x => h.appendChild(el('th', x)));"
" t.appendChild(h); rows.forEach(r => { const tr = el('tr'); r.forEach(x => tr.appendChild(el('td', x)));"
" t.appendChild(tr); }); return t; }\n"
"/* single: means over scores != -1, as show_result.py */\n"
"const S = {}; D.single.forEach(r => { if (r.score === -1) return; const m = S[r.model] ||= {t: [[0,0],[0,0]], c: {}, all: [0,0], bad: 0};"
" if (r.turn === 1 || r.turn === 2) { m.t[r.turn-1][0] += r.score; m.t[r.turn-1][1]++; } m.all[0] += r.score; m.all[1]++;"
" const cat = (qById[r.question_id] || {}).category || '?'; const c = m.c[cat] ||= [0,0]; c[0] += r.score; c[1]++; });\n"
"const unparsable = {}; D.single.forEach(r => { if (r.score === -1) unparsable[r.model] = (unparsable[r.model] || 0) + 1; });\n"
"const sm = Object.keys(S).sort((a, b) => S[b].all[0]/S[b].all[1] - S[a].all[0]/S[a].all[1]);\n"
"if (D.single.length) $('single').appendChild(table(['model', 'turn 1', 'turn 2', 'average', 'graded', 'no verdict'],"
" [...new Set([...sm, ...Object.keys(unparsable).sort()])].map(m => { const s = S[m]; return [m, s ? fmt(s.t[0][0]/s.t[0][1], 2) : '-',"
" s ? fmt(s.t[1][0]/s.t[1][1], 2) : '-', s ? fmt(s.all[0]/s.all[1], 2) : '-', s ? s.all[1] : 0, unparsable[m] || 0]; })));\n"
"else $('single').appendChild(el('p', 'no single-answer judgments', 'muted'));\n"
"/* chart: grouped bars, one group per category, one bar per model */\n"
"(function chart() { const W = Math.max(640, cats.length * (sm.length * 14 + 30) + 60), H = 260, ns = 'http://www.w3.org/2000/svg';\n"
" const svg = document.createElementNS(ns, 'svg'); svg.setAttribute('width', W); svg.setAttribute('height', H + 60); svg.setAttribute('id', 'chart-svg');\n"
" const colors = ['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#edc948','#b07aa1','#ff9da7','#9c755f','#bab0ac'];\n"
" function add(tag, at, text) { const e = document.createElementNS(ns, tag); for (const k in at) e.setAttribute(k, at[k]);"
" if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; }\n"
" for (let v = 0; v <= 10; v += 2) { const y = 20 + H - v / 10 * H; add('line', {x1: 40, x2: W - 10, y1: y, y2: y, stroke: '#e3e6eb'});"
" add('text', {x: 30, y: y + 4, 'text-anchor': 'end', 'font-size': 11}, v); }\n"
" const gw = (W - 60) / Math.max(1, cats.length);\n"
" cats.forEach((c, i) => { const x0 = 50 + i * gw; add('text', {x: x0 + gw / 2 - 10, y: H + 40, 'text-anchor': 'middle', 'font-size': 12}, c);\n"
"  sm.forEach((m, j) => { const s = S[m].c[c]; if (!s) return; const v = s[0] / s[1], bw = Math.min(14, (gw - 20) / sm.length);\n"
"   const r = add('rect', {x: x0 + j * bw, y: 20 + H - v / 10 * H, width: bw - 2, height: v / 10 * H, fill: colors[j % colors.length], class: 'bar'});\n"
"   const t = document.createElementNS(ns, 'title'); t.textContent = m + ' / ' + c + ': ' + v.toFixed(2); r.appendChild(t); }); });\n"
" sm.forEach((m, j) => { add('rect', {x: 50 + j * 150, y: 2, width: 10, height: 10, fill: colors[j % colors.length]});"
" add('text', {x: 64 + j * 150, y: 11, 'font-size': 11}, m); });\n"
" if (!sm.length) add('text', {x: 60, y: 60, 'font-size': 13}, 'no graded answers');\n"
" $('chart').appendChild(svg); })();\n"
"/* pairwise: show_result.py's win / loss / tie counting */\n"
"(function pairs() { const P = {}; D.pair.forEach(r => { if (r.g1_winner === 'error' || r.g2_winner === 'error') return;\n"
" const a = P[r.model_1] ||= [0,0,0], b = P[r.model_2] ||= [0,0,0];\n"
" if (r.g1_winner === 'tie' || r.g1_winner !== r.g2_winner) { a[2]++; b[2]++; } else if (r.g1_winner === 'model_1') { a[0]++; b[1]++; } else { b[0]++; a[1]++; } });\n"
" const errs = D.pair.filter(r => r.g1_winner === 'error' || r.g2_winner === 'error').length;\n"
" const rows = Object.keys(P).map(m => { const [w, l, t] = P[m], n = w + l + t; return [m, w, l, t, fmt(w/n, 3), fmt(l/n, 3), fmt((w + t/2)/n, 3)]; });\n"
" rows.sort((x, y) => y[6] - x[6]);\n"
" if (D.pair.length) { $('pair').appendChild(table(['model', 'win', 'loss', 'tie', 'win rate', 'loss rate', 'win rate adjusted'], rows));\n"
"  $('pair').appendChild(el('p', errs + ' of ' + D.pair.length + ' games dropped for an error verdict', 'muted'));\n"
"  /* head to head: row model's adjusted win rate against the column model */\n"
"  const H2 = {}; D.pair.forEach(r => { if (r.g1_winner === 'error' || r.g2_winner === 'error') return;\n"
"   const k = r.model_1 + '\\u0000' + r.model_2, k2 = r.model_2 + '\\u0000' + r.model_1; const a = H2[k] ||= [0,0], b = H2[k2] ||= [0,0];\n"
"   const s = (r.g1_winner === 'tie' || r.g1_winner !== r.g2_winner) ? 0.5 : r.g1_winner === 'model_1' ? 1 : 0;\n"
"   a[0] += s; a[1]++; b[0] += 1 - s; b[1]++; });\n"
"  const pm = Object.keys(P).sort(); $('pair').appendChild(table(['win rate of row vs column', ...pm], pm.map(a => [a, ...pm.map(b => { const h = H2[a + '\\u0000' + b];"
" return a === b || !h ? '-' : fmt(h[0] / h[1], 2); })])));\n"
" } else $('pair').appendChild(el('p', 'no pairwise judgments', 'muted')); })();\n"
"/* the browser */\n"
"let mode = 'single';\n"
"function fill(sel, items, label) { const old = sel.value; sel.textContent = ''; items.forEach(v => { const o = el('option', label ? label(v) : v); o.value = v; sel.appendChild(o); });"
" if (items.map(String).includes(old)) sel.value = old; }\n"
"fill($('cat'), cats); fill($('ma'), models); fill($('mb'), models); if (models.length > 1) $('mb').value = models[1];\n"
"function updQ() { const qs = D.questions.filter(q => q.category === $('cat').value).map(q => q.question_id);"
" fill($('q'), qs, id => id + ': ' + (qById[id].turns[0] || '').slice(0, 70)); }\n"
"function turnsOf(m, qid) { return ((D.answers[m] || {})[String(qid)]) || []; }\n"
"function render() { const b = $('browser'); b.textContent = ''; const q = qById[$('q').value] || qById[Number($('q').value)]; if (!q) return;\n"
" const ma = $('ma').value, mb = $('mb').value; $('mbl').style.display = mode === 'pair' ? '' : 'none';\n"
" q.turns.forEach((t, i) => { b.appendChild(el('div', 'Turn ' + (i + 1) + ' question', 'lab')); b.appendChild(el('div', t, 'box question'));\n"
"  const row = el('div', null, 'row'); [ma, ...(mode === 'pair' ? [mb] : [])].forEach(m => { const c = el('div', null, 'col');"
" c.appendChild(el('div', m, 'lab')); c.appendChild(el('div', turnsOf(m, q.question_id)[i] ?? '(no answer)', 'box answer')); row.appendChild(c); });\n"
"  b.appendChild(row);\n"
"  if (q.reference && q.reference[i]) { b.appendChild(el('div', 'Reference answer', 'lab')); b.appendChild(el('div', q.reference[i], 'box')); }\n"
"  if (mode === 'single') { const j = D.single.filter(r => r.question_id == q.question_id && r.model === ma && r.turn === i + 1);\n"
"   j.forEach(r => { b.appendChild(el('div', 'Judgment (' + r.prompt + '), score ' + r.score, 'lab')); b.appendChild(el('div', r.judgment, 'box judgment')); });\n"
"   if (!j.length) b.appendChild(el('div', 'no judgment of this answer', 'muted'));\n"
"  } else { const j = D.pair.filter(r => r.question_id == q.question_id && r.turn === i + 1 &&"
" ((r.model_1 === ma && r.model_2 === mb) || (r.model_1 === mb && r.model_2 === ma)));\n"
"   j.forEach(r => { b.appendChild(el('div', 'Game 1: A = ' + r.model_1 + ', B = ' + r.model_2 + ', winner ' + r.g1_winner, 'lab'));"
" b.appendChild(el('div', r.g1_judgment, 'box judgment')); b.appendChild(el('div', 'Game 2: A = ' + r.model_2 + ', B = ' + r.model_1 + ', winner ' + r.g2_winner, 'lab'));"
" b.appendChild(el('div', r.g2_judgment, 'box judgment')); });\n"
"   if (!j.length) b.appendChild(el('div', 'no pairwise judgment of these two models', 'muted')); } }); }\n"
"$('cat').onchange = () => { updQ(); render(); }; $('q').onchange = render; $('ma').onchange = render; $('mb').onchange = render;\n"
"$('tab-single').onclick = () => { mode = 'single'; $('tab-single').className = 'on'; $('tab-pair').className = ''; render(); };\n"
"$('tab-pair').onclick = () => { mode = 'pair'; $('tab-pair').className = 'on'; $('tab-single').className = ''; render(); };\n"
"updQ(); render();\n"
"document.body.setAttribute('data-ready', '1');\n"
"</script></body></html>\n";

char *fc_mt_report_html(const cJSON *data, size_t *len)
{
    char *js = cJSON_PrintUnformatted(data);
    if (!js) return NULL;
    size_t n = strlen(js), lt = 0;
    for (const char *p = js; *p; p++) lt += *p == '<';
    size_t cap = sizeof page_head + n + 5 * lt + sizeof page_tail;
    char *out = fc_xmalloc(cap), *w = out;
    memcpy(w, page_head, sizeof page_head - 1);
    w += sizeof page_head - 1;
    /* '<' occurs only inside JSON strings: written as \u003c it is the
     * same JSON, and no text can close the block or open a comment in it */
    for (const char *p = js; *p; p++) {
        if (*p == '<') {
            memcpy(w, "\\u003c", 6);
            w += 6;
        } else {
            *w++ = *p;
        }
    }
    memcpy(w, page_tail, sizeof page_tail);
    w += sizeof page_tail - 1;
    cJSON_free(js);
    if (len) *len = (size_t)(w - out);
    return out;
}

int fc_mt_report_write(const char *path, const cJSON *data)
{
    size_t len;
    char *html = fc_mt_report_html(data, &len);
    if (!html) return FC_ERR_NOMEM;
    int rc = fc_mkdir_parents(path);
    if (rc == FC_OK) rc = fc_file_write_atomic(path, html, len);
    free(html);
    return rc;
}
