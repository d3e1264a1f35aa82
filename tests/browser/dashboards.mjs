// Opens every Pulse dashboard in Debian's chromium as a person would: log in through the form, open
// each tab (a dashboard without tabs is one), wait until every chart on it has drawn, fail on any chart
// error or a table cut off at the right, apply the Platform filter and visit every tab again to report
// each chart's data under it, save a screenshot per tab. Prints one JSON report on stdout.
// Env: SUPERSET_URL, SUPERSET_USER, SUPERSET_PASSWORD (never on the command line), DASHBOARDS
// (comma-separated slugs), FILTER_VALUE (a platform), OUT_DIR (screenshots), REPEATS (timing runs),
// WATCH_REFRESH_S (stay that long on the page and count the chart-data requests its auto-refresh makes),
// SHOT_SUFFIX (appended to the screenshots' names: another source's dashboards).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { waitStable, waitUntil } from './wait.mjs';

const base = process.env.SUPERSET_URL.replace(/\/$/, '');
const slugs = (process.env.DASHBOARDS || 'product-analytics').split(',');
const outDir = process.env.OUT_DIR || '.';
const repeats = Number(process.env.REPEATS || '1');
const filterValue = process.env.FILTER_VALUE || '';
fs.mkdirSync(outDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
const page = await context.newPage();
const report = { dashboards: {} };

// chart-data responses by chart id, in arrival order
let responses = [];
page.on('response', (resp) => {
  if (!resp.url().includes('/api/v1/chart/data')) return;
  let req = null;
  try { req = JSON.parse(resp.request().postData() || '{}'); } catch { req = {}; }
  // a dashboard's own chart loads carry form_data={"slice_id": N} in the URL; filter-option queries do not
  let urlSlice = null;
  try { urlSlice = JSON.parse(new URL(resp.url()).searchParams.get('form_data') || '{}').slice_id ?? null; } catch { urlSlice = null; }
  // recorded on arrival (timing); the body is read later, only where it is compared
  responses.push({ at: Date.now(), status: resp.status(), sliceId: urlSlice ?? req?.form_data?.slice_id, request: req, body: resp.json().catch(() => null) });
});

async function dataBySlice() {
  const out = {};
  for (const x of responses.filter((r) => r.sliceId)) out[x.sliceId] = JSON.stringify((await x.body)?.result?.map((q) => q.data));
  return out;
}

async function login() {
  // through the form, as a person does; a person who lands on the login page again tries once more
  // (seen once in a full CI run under load: the form came back without a word), and the report says so
  const failures = [];
  for (let attempt = 1; attempt <= 2; attempt++) {
    await page.goto(`${base}/login/`);
    await page.fill('[data-test="username-input"]', process.env.SUPERSET_USER);
    await page.fill('[data-test="password-input"]', process.env.SUPERSET_PASSWORD);
    await page.keyboard.press('Enter');
    try {
      await page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: 30000 });
      return failures;
    } catch (e) {
      const said = await page.locator('.ant-message, [role="alert"]').allInnerTexts().catch(() => []);
      failures.push({ attempt, url: page.url(), said: said.join(' | ').slice(0, 300) });
      console.error(`login attempt ${attempt} stayed on ${page.url()}: ${said.join(' | ') || '(no message)'}`);
    }
  }
  throw new Error(`could not log in to Superset: ${JSON.stringify(failures)}`);
}
report.login_failures = await login();

// A chart holder counts as drawn when its visualisation is there (canvas, svg, table, markdown) or it
// shows an error; a title alone is not enough. Only the holders on the open tab count (the others are
// hidden or not mounted yet).
// (defined in the page by an init script: CDP-injected, so the dashboard's CSP does not block it;
// the memo's Markdown holder counts once it has text)
await context.addInitScript(() => {
  window.__pulseDrawn = (h) => !!h.querySelector('canvas, svg, table, [data-test="error-message"], .ant-alert')
    || (!!h.closest('.dashboard-markdown') && h.innerText.trim().length > 0);
  window.__pulseShown = (h) => h.offsetParent !== null;
  window.__pulseInView = (h) => { const r = h.getBoundingClientRect(); return r.bottom > 0 && r.top < window.innerHeight; };
  window.__pulseHolders = () => [...document.querySelectorAll('.dashboard-component-chart-holder')].filter(window.__pulseShown);
});

async function tabsOf(slug) {
  // the dashboard's top-level tabs from its layout, each with the chart ids and holders under it
  const d = (await (await page.request.get(`${base}/api/v1/dashboard/${slug}`)).json()).result;
  const pos = JSON.parse(d.position_json || '{}');
  const under = (id, type) => {
    const node = pos[id];
    if (!node) return [];
    const mine = node.type === type ? [type === 'CHART' ? node.meta.chartId : id] : [];
    return mine.concat(...(node.children || []).map((c) => under(c, type)));
  };
  const holders = (id) => under(id, 'CHART').length + under(id, 'MARKDOWN').length;
  const top = (pos.ROOT_ID?.children || []).map((id) => pos[id]).find((n) => n?.type === 'TABS');
  if (!top) return [{ id: null, title: '', key: 'all', charts: under('ROOT_ID', 'CHART'), holders: holders('ROOT_ID') }];
  return top.children.map((id) => ({
    id, title: pos[id].meta.text, key: pos[id].meta.text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, ''),
    charts: under(id, 'CHART'), holders: holders(id),
  }));
}

async function openTab(tab) {
  if (!tab.id) return;
  // antd's tab button, by the layout id Superset gives it (`<TABS id>-tab-<TAB id>`)
  await page.locator(`[role="tab"][id$="-tab-${tab.id}"]`).first().click();
}

function answered(ids) {  // the charts among ids whose data request of this page load has answered
  const got = new Set(responses.filter((x) => x.sliceId && x.status < 400).map((x) => x.sliceId));
  return ids.filter((id) => got.has(id)).length;
}

async function rendered(tab) {
  // every chart of the tab has its data, and every chart of it in the viewport is drawn (Superset draws
  // charts below the fold when they scroll into view: DASHBOARD_VIRTUALIZATION). Both waits start at once:
  // the page-side one injects Playwright's script into the page, which costs a busy page ~0.5 s on two
  // cores when it starts only after the data is in (measured) — a cost of the measurement, not of Superset
  await Promise.all([
    waitUntil(() => answered(tab.charts) >= tab.charts.length, `data for the ${tab.charts.length} charts of tab "${tab.title}"`, { timeout: 120000 }),
    page.waitForFunction((n) => {
      const holders = window.__pulseHolders();
      if (holders.length < Math.max(n, 1)) return false;
      if (holders.some((h) => h.querySelector('[data-test="loading-indicator"]'))) return false;
      return holders.filter(window.__pulseInView).every(window.__pulseDrawn);
    }, tab.holders, { timeout: 120000, polling: 25 }),
  ]);
}

async function allDrawn() {
  // scroll through the open tab as a reader would, until every chart holder on it has drawn
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  for (let y = 0; y < height; y += 800) {
    await page.evaluate((yy) => window.scrollTo(0, yy), y);
    await page.waitForFunction(() => window.__pulseHolders().filter(window.__pulseInView).every(window.__pulseDrawn),
      null, { timeout: 60000, polling: 25 });
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  return page.evaluate(() => window.__pulseHolders().filter((h) => !window.__pulseDrawn(h)).length);
}

async function picture(file) {
  // the whole tab in one picture: grow the viewport to the page (so every chart is in view and none is
  // virtualized away mid-shot), wait until every chart is drawn again, shoot, shrink back
  const viewport = page.viewportSize();
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, height) });
  await page.waitForFunction(() => window.__pulseHolders().every(window.__pulseDrawn), null, { timeout: 60000, polling: 50 });
  // ECharts animates its drawing: the picture is taken once every canvas looks the same twice in a row
  await waitStable(() => page.$$eval('canvas', (cs) => cs.map((c) => c.toDataURL().length).join(',')), 'the charts to finish drawing');
  await page.screenshot({ path: path.join(outDir, file) });
  await page.setViewportSize(viewport);
}

async function chartErrors() {
  return page.evaluate(() => window.__pulseHolders()
    .filter((h) => h.querySelector('[data-test="error-message"], .ant-alert-error, .alert-danger'))
    .map((h) => h.innerText.slice(0, 300)));
}

async function cutTables() {
  // a table wider than its tile: the reader sees a horizontal scrollbar and the right columns cut off
  return page.evaluate(() => window.__pulseHolders().flatMap((h) => [...h.querySelectorAll('table')]
    .filter((t) => t.scrollWidth > h.clientWidth + 2)
    .map(() => (h.querySelector('.header-title, [data-test="editable-title"]')?.innerText || h.innerText).slice(0, 80))));
}

async function visit(slug, tabs, tab, i) {
  // a fresh page on the tab: its own load when it is the first tab, a click on it otherwise (what a
  // reader switching tabs waits for); returns the ms from navigation or click to every chart drawn
  // from a blank page, as a reader opening it in a new tab: leaving the previous visit's dashboard (its
  // single-page app torn down) is that page's cost, not this one's
  await page.goto('about:blank');
  responses = [];
  const t0 = Date.now();
  // no waitForSelector here: its polling inside the page while the app boots costs the page ~0.6 s on two
  // cores (measured); rendered() waits on the network and polls the page every 25 ms
  await page.goto(`${base}/superset/dashboard/${slug}/?standalone=0&visit=${i}`, { waitUntil: 'commit' });
  let start = t0;
  if (tab !== tabs[0]) {  // the dashboard opens on its first tab
    await rendered(tabs[0]);
    responses = [];
    start = Date.now();
    await openTab(tab);
  }
  await rendered(tab);
  const render = Date.now() - start;
  const last = Math.max(start, ...responses.filter((x) => x.sliceId).map((x) => x.at));
  const undrawn = await allDrawn();
  if (undrawn) throw new Error(`${undrawn} chart(s) never drew on ${slug}, tab "${tab.title}"`);
  return { render_ms: render, data_ms: last - start, all_drawn_ms: Date.now() - start };
}

for (const slug of slugs) {
  const tabs = await tabsOf(slug);
  const r = { tabs: [], errors: [], failed_requests: [], cut_tables: [], charts: 0, text: '' };
  const before = {};
  for (const tab of tabs) {
    const t = { key: tab.key, title: tab.title, charts: tab.charts.length, render_ms: [], data_ms: [], all_drawn_ms: [] };
    for (let i = 0; i < repeats; i++) {
      const times = await visit(slug, tabs, tab, i);
      for (const k of ['render_ms', 'data_ms', 'all_drawn_ms']) t[k].push(times[k]);
    }
    r.errors.push(...(await chartErrors()).map((e) => `${tab.title}: ${e}`));
    r.cut_tables.push(...(await cutTables()).map((e) => `${tab.title}: ${e}`));
    r.failed_requests.push(...await Promise.all(responses.filter((x) => x.status >= 400)
      .map(async (x) => ({ tab: tab.title, slice: x.sliceId, status: x.status, body: JSON.stringify(await x.body).slice(0, 300) }))));
    Object.assign(before, await dataBySlice());
    const shot = `${slug}${tabs.length > 1 ? `-${tab.key}` : ''}${process.env.SHOT_SUFFIX || ''}.png`;  // SHOT_SUFFIX: another source's pictures apart
    await picture(shot);
    t.screenshot = path.join(outDir, shot);
    r.text += (await page.innerText('body')).slice(0, 50000) + '\n';  // what the page says: titles, empty states
    r.charts += tab.charts.length;
    r.tabs.push(t);
  }
  if (process.env.WATCH_REFRESH_S) {  // nobody touches the page: only the dashboard's own refresh can ask for data
    // wait until every chart (of the last tab visited) has asked again twice on its own, within WATCH_REFRESH_S
    responses = [];
    const t0 = Date.now();
    const bySlice = () => {
      const n = {};
      for (const x of responses.filter((x) => x.sliceId)) n[x.sliceId] = (n[x.sliceId] || 0) + 1;
      return n;
    };
    const expected = tabs[tabs.length - 1].charts.length;
    await waitUntil(() => Object.keys(bySlice()).length >= expected && Math.min(...Object.values(bySlice())) >= 2,
      'every chart to refresh twice by itself', { timeout: Number(process.env.WATCH_REFRESH_S) * 1000, interval: 250 });
    r.refresh_seconds = (Date.now() - t0) / 1000;
    r.refresh_requests = responses.filter((x) => x.sliceId).length;
    r.refresh_by_slice = bySlice();
    r.refresh_failed = responses.filter((x) => x.sliceId && x.status >= 400).length;
    r.refreshed_data = await dataBySlice();
  }

  if (filterValue) {
    // the filter set once, on the first tab; then every tab visited under it: each chart asks again
    await visit(slug, tabs, tabs[0], 'filter');
    if (await page.$('[data-test="NATIVE_FILTER-platform"]')) {
      responses = [];
      await page.locator('[data-test="NATIVE_FILTER-platform"]').first().click();
      await page.keyboard.type(filterValue);
      await page.locator(`.ant-select-item-option[title="${filterValue}"]`).first().click();
      await page.keyboard.press('Escape');
      await page.click('[data-test="filter-bar__apply-button"]');
      const errors = [];
      for (const tab of tabs) {
        await openTab(tab);
        await rendered(tab);
        await allDrawn();
        errors.push(...(await chartErrors()).map((e) => `${tab.title}: ${e}`));
        if (tab === tabs[0]) await picture(`${slug}-filtered.png`);
      }
      const after = await dataBySlice();
      r.filter = {
        value: filterValue,
        requested: Object.keys(after).length,
        changed: Object.keys(after).filter((k) => after[k] !== before[k]).length,
        unchanged: Object.keys(after).filter((k) => after[k] === before[k]).map(Number),
        with_filter: new Set(responses.filter((x) => x.sliceId && JSON.stringify(x.request?.queries?.[0]?.filters || []).includes(filterValue)).map((x) => x.sliceId)).size,
        errors,
        data: after,  // each chart's data under the filter: the test checks values, not only that they changed
      };
    }
  }
  report.dashboards[slug] = r;
}
await browser.close();
console.log(JSON.stringify(report));
