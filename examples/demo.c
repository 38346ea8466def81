/* demo.c: the motivating example, in a browser.
 *
 *   GET /demo        ->  200, one HTML page (inline CSS and JavaScript)
 *   GET /demo?ms=N   ->  the same page, sleeping N ms instead of 1000
 *
 * The page needs the sleep plugin (examples/sleep.c) loaded in the same
 * server: it fires six requests at once to /sleep/async, waits for all of
 * them, then six at once to /sleep/sync, and draws each request's
 * timeline as a bar, the view a browser's network panel gives. Run the
 * server with one worker to see the difference:
 *
 *   build/spoke --workers 1 --plugins build/plugins   (demo.so + sleep.so)
 *   open http://127.0.0.1:8080/demo
 *
 * The six async sleeps wait on timers on the event loop and hold no
 * thread, so they overlap and all six answers come after about 1 s. Each
 * sync sleep holds the one worker for 1 s, like time.sleep() in a Flask
 * view, so the server queues the other five behind it and the answers
 * come one a second, the last after about 6 s. Six, because a browser
 * opens at most six HTTP/1.1 connections to one host: a seventh request
 * would wait in the browser, not in the server.
 *
 * Then the database lane does the same with real queries, through the
 * pg example (examples/pg, docs/DATABASE.md): six /pg/async?ms=N at once
 * (SELECT pg_sleep() with libpq non-blocking, its sockets watched by the
 * event loop), then six /pg/sync?ms=N (a blocking libpq call on a
 * worker), drawn and judged the same way. Before them one probe,
 * GET /pg/async?ms=0, must answer 200; if it does not (404: pg.so is not
 * loaded; 503: no database reachable) the page says so and skips the
 * lane, so a server without a database still shows a clean page. With
 * a database, put its conninfo in the config file's [plugin pg] section
 * (examples/spoke.conf, which `make run` uses, has it commented out):
 *
 *   [plugin pg]
 *   conninfo = host=127.0.0.1 port=5432 user=postgres dbname=postgres
 *
 *   build/spoke --workers 1 --plugins build/plugins --config spoke.conf
 *
 * Each bar runs from the moment the page sent the request to its answer;
 * the bar's last N ms, the sleep itself, is dark, what came before is
 * pale: for sync requests, the time queued for the worker. "run again"
 * repeats the whole thing.
 *
 * When the page is done it leaves its measurements in window.demo:
 * {done, ok, ms, n, async: [[start, end] x 6], sync: [...], timing (the
 * browser's Resource Timing: requestStart, responseStart, responseEnd),
 * requests (status, body, error of each), db}, times in ms from
 * performance.now(). ok and the fields beside it are the sleep lanes';
 * db = {skipped (null, or the reason shown), ok, async, sync, timing,
 * requests: {probe, async, sync}} is the database lane's, with empty
 * groups when skipped. done turns true last, once the database lane has
 * finished or been skipped. tests/integration/test_browser_demo.py
 * reads it through headless Chromium.
 *
 * The JavaScript is written once for both sections: a section (SLEEP,
 * DB) names its routes, what a good answer is (the body "Hello, World!";
 * a JSON body whose "mode" is the route's), its chart and status line;
 * group, draw, verdict and lanes take the section as an argument.
 *
 * Threading: /demo is SPOKE_ASYNC; it sends a string literal at once
 * (spoke_response_send copies it) and keeps no state.
 */
#include <spoke.h>

static const char page[] =
  "<!doctype html>\n"
  "<html lang=\"en\">\n"
  "<head>\n"
  "<meta charset=\"utf-8\">\n"
  "<title>spoke: sync vs async handlers</title>\n"
  "<style>\n"
  "body { font: 15px/1.45 sans-serif; margin: 24px 32px; color: #222;"
  " max-width: 940px; }\n"
  "h1 { font-size: 22px; margin: 0 0 8px; }\n"
  "h2 { font-size: 18px; margin: 22px 0 6px; }\n"
  "code { font: 13px monospace; background: #f2f2f2; padding: 0 3px; }\n"
  "p { margin: 6px 0; }\n"
  ".status { font-weight: bold; margin: 10px 0 4px; }\n"
  ".chart text { font: 12px sans-serif; fill: #222; }\n"
  ".chart .axis { fill: #666; }\n"
  ".chart .head { font-weight: bold; font-size: 13px; }\n"
  ".legend span { display: inline-block; width: 12px; height: 12px; margin:"
  " 0 5px 0 14px; vertical-align: -1px; }\n"
  ".note { color: #555; font-size: 13px; }\n"
  "button { font: inherit; margin-left: 10px; }\n"
  "</style>\n"
  "</head>\n"
  "<body>\n"
  "<h1>One blocking handler stalls everything behind it</h1>\n"
  "<p>Six requests at once to <code>/sleep/async?ms=<b"
  " class=ms>1000</b></code> (<code>SPOKE_ASYNC</code>: a timer on the event"
  " loop, no thread held), then six at once to <code>/sleep/sync?ms=<b"
  " class=ms>1000</b></code> (<code>SPOKE_SYNC</code>:"
  " <code>nanosleep()</code> on a worker thread, like"
  " <code>time.sleep()</code> in a Flask view). Each bar is one request,"
  " from the moment the page sent it to its answer.</p>\n"
  "<p class=legend><span style=\"background:#2e9d5b\"></span>async: the"
  " sleeps overlap, all six answered after one sleep<br><span"
  " style=\"background:#e07b24\"></span>sync with <code>--workers 1</code>:"
  " one sleep at a time, the last answered after six<br><span"
  " style=\"background:#f3c9a3\"></span>waiting: the part of a bar before"
  " its last <b class=ms>1000</b> ms, the sleep itself; for sync, queued for"
  " the worker</p>\n"
  "<div id=status class=status>running&hellip;</div>\n"
  "<svg id=chart class=chart width=900 height=10></svg>\n"
  "<p class=note>Why six: a browser opens at most six HTTP/1.1 connections"
  " to one host, so six is the most that can be in flight at once; a seventh"
  " would wait in the browser, not in the server. The sync queue shows with"
  " <code>spoke --workers 1</code>; with W workers W sync sleeps run at"
  " once.</p>\n"
  "<h2>The same with a database: real <code>SELECT pg_sleep()</code>"
  " queries</h2>\n"
  "<p>Six at once to <code>/pg/async?ms=<b class=ms>1000</b></code> (libpq"
  " non-blocking, driven by the event loop: the loop watches each"
  " connection's socket, no thread waits for the answer), then six at once"
  " to <code>/pg/sync?ms=<b class=ms>1000</b></code> (a blocking libpq call,"
  " <code>PQexecParams()</code>, on a worker thread, the way most web"
  " frameworks call their database). Each one is a <code>SELECT"
  " pg_sleep()</code> of that long in a real PostgreSQL, through"
  " <code>examples/pg</code> (<code>pg.so</code>). Without it or without a"
  " database this part is skipped; see <code>docs/DATABASE.md</code>.</p>\n"
  "<div id=dbstatus class=status>waiting for the sleep lanes&hellip;</div>\n"
  "<svg id=dbchart class=chart width=900 height=10></svg>\n"
  "<p class=note>Times are the page's own (<code>performance.now()</code>);"
  " results are in <code>window.demo</code> (the database's in"
  " <code>window.demo.db</code>).<button id=again disabled>run"
  " again</button></p>\n"
  "<script>\n"
  "'use strict';\n"
  "const N = 6;  // a browser's HTTP/1.1 connections per host\n"
  "const MS = Math.max(1, Math.min(60000, parseInt(new"
  " URLSearchParams(location.search).get('ms'), 10) || 1000));\n"
  "const COLOR = {async: '#2e9d5b', sync: '#e07b24'};\n"
  "const PALE = {async: '#a9dcbc', sync: '#f3c9a3'};\n"
  "let runs = 0;\n"
  "window.demo = {done: false};\n"
  "for (const b of document.querySelectorAll('.ms')) b.textContent = MS;\n"
  "\n"
  "function json(s) {\n"
  "  try {\n"
  "    return JSON.parse(s) || {};\n"
  "  } catch (e) {\n"
  "    return {};\n"
  "  }\n"
  "}\n"
  "\n"
  "// A section of the page: the routes BASE/async and BASE/sync, what a\n"
  "// good answer is, its chart and status line, and how a group is titled.\n"
  "const SLEEP = {\n"
  "  base: '/sleep', chart: 'chart', status: 'status',\n"
  "  good: (r, kind) => r.body === 'Hello, World!',\n"
  "  head: kind => `/sleep/${kind} (SPOKE_${kind.toUpperCase()}): ${N}"
  " requests at once, in the order answered`,\n"
  "  failed: 'some requests failed (is sleep.so loaded?)',\n"
  "};\n"
  "const DB = {\n"
  "  base: '/pg', chart: 'dbchart', status: 'dbstatus',\n"
  "  good: (r, kind) => json(r.body).mode === kind,\n"
  "  head: kind => `/pg/${kind} (${kind === 'async' ? 'libpq on the loop' :"
  " 'blocking libpq on a worker'}): ${N} queries at once, in the order"
  " answered`,\n"
  "  failed: 'some database requests failed (see window.demo.db.requests)',\n"
  "};\n"
  "\n"
  "// One request; times from performance.now(), in ms.\n"
  "async function one(lane, kind, query) {\n"
  "  const url = `${lane.base}/${kind}?${query}`;\n"
  "  const r = {url, start: performance.now(), end: 0, status: 0, error:"
  " null};\n"
  "  try {\n"
  "    const res = await fetch(url, {cache: 'no-store'});\n"
  "    r.status = res.status;\n"
  "    r.body = await res.text();\n"
  "  } catch (e) {\n"
  "    r.error = String(e);\n"
  "  }\n"
  "  r.end = performance.now();\n"
  "  r.ok = r.status === 200 && lane.good(r, kind);\n"
  "  return r;\n"
  "}\n"
  "\n"
  "// N requests at once; resolves when every one has its answer.\n"
  "function group(lane, kind, run) {\n"
  "  const all = [];\n"
  "  for (let i = 1; i <= N; i++)\n"
  "    all.push(one(lane, kind, `ms=${MS}&i=${i}&run=${run}`));\n"
  "  return Promise.all(all);\n"
  "}\n"
  "\n"
  "// The browser's own view of each request (Resource Timing): when it\n"
  "// went on the wire and when its first answer byte came back.\n"
  "function timing(r) {\n"
  "  const e = performance.getEntriesByName(new URL(r.url,"
  " location.href).href)[0];\n"
  "  return e ? {requestStart: e.requestStart, responseStart:"
  " e.responseStart, responseEnd: e.responseEnd} : null;\n"
  "}\n"
  "\n"
  "function span(g) {\n"
  "  return Math.max(...g.map(r => r.end)) - Math.min(...g.map(r =>"
  " r.start));\n"
  "}\n"
  "\n"
  "// Every interval overlaps every other: the last start is before the\n"
  "// first end.\n"
  "function overlapped(g) {\n"
  "  return Math.max(...g.map(r => r.start)) < Math.min(...g.map(r =>"
  " r.end));\n"
  "}\n"
  "\n"
  "// Answers one after another, at least ~one sleep apart.\n"
  "function queued(g) {\n"
  "  const ends = g.map(r => r.end).sort((a, b) => a - b);\n"
  "  for (let i = 1; i < ends.length; i++)\n"
  "    if (ends[i] - ends[i - 1] < 0.9 * MS) return false;\n"
  "  return true;\n"
  "}\n"
  "\n"
  "const SVG = 'http://www.w3.org/2000/svg';\n"
  "function el(parent, name, attrs, text) {\n"
  "  const e = document.createElementNS(SVG, name);\n"
  "  for (const k in attrs) e.setAttribute(k, attrs[k]);\n"
  "  if (text !== undefined) e.textContent = text;\n"
  "  parent.appendChild(e);\n"
  "  return e;\n"
  "}\n"
  "\n"
  "// A section's groups on one time scale, each from its own first"
  " request.\n"
  "function draw(lane, groups) {\n"
  "  const svg = document.getElementById(lane.chart);\n"
  "  svg.textContent = '';\n"
  "  const W = 900, X0 = 86, X1 = W - 64, ROW = 22, BAR = 14;\n"
  "  let T = N * MS * 1.05;\n"
  "  for (const [, g] of groups) T = Math.max(T, span(g));\n"
  "  const x = t => X0 + (X1 - X0) * t / T;\n"
  "  const step = T / MS > 12 ? 2 * MS : MS;\n"
  "  let y = 8;\n"
  "  for (const [kind, g] of groups) {\n"
  "    const t0 = Math.min(...g.map(r => r.start));\n"
  "    el(svg, 'text', {x: 0, y: y + 12, class: 'head'}, lane.head(kind));\n"
  "    y += 22;\n"
  "    const bottom = y + N * ROW;\n"
  "    for (let t = 0; t <= T; t += step) {\n"
  "      el(svg, 'line', {x1: x(t), x2: x(t), y1: y - 4, y2: bottom,\n"
  "         stroke: '#000', 'stroke-opacity': t ? 0.12 : 0.5});\n"
  "      el(svg, 'text', {x: x(t), y: bottom + 12, 'text-anchor': 'middle',"
  " class: 'axis'},\n"
  "         `${+(t / 1000).toFixed(2)} s`);\n"
  "    }\n"
  "    // Rows in the order answered; #i is the order sent.\n"
  "    const rows = g.map((r, i) => [r, i]).sort((a, b) => a[0].end -"
  " b[0].end);\n"
  "    for (const [r, i] of rows) {\n"
  "      const d = r.end - r.start, sleep = Math.min(d, MS);\n"
  "      el(svg, 'text', {x: 0, y: y + BAR - 2}, `${kind} #${i + 1}`);\n"
  "      el(svg, 'rect', {x: x(r.start - t0), y, height: BAR,\n"
  "         width: Math.max(1, x(d) - x(0)), fill: r.ok ? PALE[kind] :"
  " '#c00'});\n"
  "      if (r.ok)\n"
  "        el(svg, 'rect', {x: x(r.end - t0 - sleep), y, height: BAR,\n"
  "           width: Math.max(1, x(sleep) - x(0)), fill: COLOR[kind]});\n"
  "      el(svg, 'text', {x: x(r.end - t0) + 5, y: y + BAR - 2},\n"
  "         r.ok ? `${(d / 1000).toFixed(2)} s` : `failed: ${r.error ||"
  " r.status}`);\n"
  "      y += ROW;\n"
  "    }\n"
  "    y += 40;\n"
  "  }\n"
  "  svg.setAttribute('height', y);\n"
  "}\n"
  "\n"
  "function clear(lane) {\n"
  "  const svg = document.getElementById(lane.chart);\n"
  "  svg.textContent = '';\n"
  "  svg.setAttribute('height', 10);\n"
  "}\n"
  "\n"
  "function verdict(a, s) {\n"
  "  const sec = g => (span(g) / 1000).toFixed(2) + ' s';\n"
  "  const va = overlapped(a) ? `async: the ${N} overlapped, all answered"
  " within ${sec(a)}.`\n"
  "    : `async: did not overlap (${sec(a)}).`;\n"
  "  const vs = queued(s) ? `sync: queued, one answer per sleep, the last"
  " after ${sec(s)}.`\n"
  "    : overlapped(s) ? `sync: overlapped too (${sec(s)}): the server has"
  " more than one worker; start it with --workers 1 to see the queue.`\n"
  "    : `sync: ${sec(s)} in all.`;\n"
  "  return va + ' ' + vs;\n"
  "}\n"
  "\n"
  "// A section's two groups, async then sync, drawn as they finish.\n"
  "async function lanes(lane, run) {\n"
  "  const status = document.getElementById(lane.status);\n"
  "  status.textContent = `${N} requests to ${lane.base}/async\\u2026`;\n"
  "  const a = await group(lane, 'async', run);\n"
  "  draw(lane, [['async', a]]);\n"
  "  status.textContent = `${N} requests to ${lane.base}/sync\\u2026`;\n"
  "  const s = await group(lane, 'sync', run);\n"
  "  draw(lane, [['async', a], ['sync', s]]);\n"
  "  const ok = a.every(r => r.ok) && s.every(r => r.ok);\n"
  "  status.textContent = ok ? verdict(a, s) : lane.failed;\n"
  "  return {ok, a, s};\n"
  "}\n"
  "\n"
  "// Is there a database behind /pg? Without pg.so the answer is 404;\n"
  "// with it but no database reachable, 503 (it connects on first use).\n"
  "// Returns the probe's request and why the database lanes are skipped\n"
  "// (null: they run).\n"
  "async function probe(run) {\n"
  "  const r = await one(DB, 'async', `ms=0&probe=1&run=${run}`);\n"
  "  if (r.ok) return {r, why: null};\n"
  "  const what = r.error ? `failed (${r.error})`\n"
  "    : `answered ${r.status}` + (r.status === 200 ? ' without"
  " {\"mode\":\"async\"}' : '');\n"
  "  const hint = r.status === 404 ? 'is pg.so loaded?'\n"
  "    : r.status === 503 ? 'is PostgreSQL running?' : 'is pg.so working?';\n"
  "  return {r, why: `database lane skipped: /pg/async ${what} \\u2014"
  " ${hint} see docs/DATABASE.md`};\n"
  "}\n"
  "\n"
  "async function run() {\n"
  "  const again = document.getElementById('again');\n"
  "  const dbstatus = document.getElementById(DB.status);\n"
  "  const run = ++runs;\n"
  "  again.disabled = true;\n"
  "  window.demo = {done: false};\n"
  "  clear(DB);\n"
  "  dbstatus.textContent = 'waiting for the sleep lanes\\u2026';\n"
  "  const sleep = await lanes(SLEEP, run);\n"
  "  dbstatus.textContent = 'is there a database? asking"
  " /pg/async?ms=0\\u2026';\n"
  "  const p = await probe(run);\n"
  "  const db = p.why ? null : await lanes(DB, run);\n"
  "  if (p.why) dbstatus.textContent = p.why;\n"
  "  // A Resource Timing entry is queued when its response ends: let\n"
  "  // the last ones land before reading them.\n"
  "  await new Promise(done => setTimeout(done, 50));\n"
  "  const a = sleep.a, s = sleep.s;\n"
  "  window.demo = {\n"
  "    done: false, ok: sleep.ok, ms: MS, n: N,\n"
  "    async: a.map(r => [r.start, r.end]),\n"
  "    sync: s.map(r => [r.start, r.end]),\n"
  "    timing: {async: a.map(timing), sync: s.map(timing)},\n"
  "    requests: {async: a, sync: s},\n"
  "    db: db ? {\n"
  "      skipped: null, ok: db.ok,\n"
  "      async: db.a.map(r => [r.start, r.end]),\n"
  "      sync: db.s.map(r => [r.start, r.end]),\n"
  "      timing: {async: db.a.map(timing), sync: db.s.map(timing)},\n"
  "      requests: {probe: p.r, async: db.a, sync: db.s},\n"
  "    } : {\n"
  "      skipped: p.why, ok: false, async: [], sync: [],\n"
  "      timing: {async: [], sync: []}, requests: {probe: p.r},\n"
  "    },\n"
  "  };\n"
  "  // Last: a reader waiting for done finds everything above in place.\n"
  "  window.demo.done = true;\n"
  "  again.disabled = false;\n"
  "}\n"
  "\n"
  "document.getElementById('again').onclick = run;\n"
  "run();\n"
  "</script>\n"
  "</body>\n"
  "</html>\n";


/* SPOKE_ASYNC: answers at once from a string literal, never blocks. */
static int demo(spoke_request_t *req) {
  spoke_response_header(req, "Content-Type", "text/html; charset=utf-8");
  /* Every run of the page fetches it anew; so do the requests it fires. */
  spoke_response_header(req, "Cache-Control", "no-store");
  return spoke_response_send(req, page, sizeof(page) - 1);
}

static const spoke_route_t routes[] = {
  { "GET", "/demo", SPOKE_ASYNC, demo },
};

SPOKE_PLUGIN(.name = "demo", .version = "1.0.0", SPOKE_ROUTES(routes));
