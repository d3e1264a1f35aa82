// Opens every Pulse dashboard in Debian's chromium as a person would: log in through the form, wait
// until every chart has rendered, fail on any chart error, apply the Platform filter and report each
// chart's data under it, save screenshots. Prints one JSON report on stdout.
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
// shows an error; a title alone is not enough.
// (defined in the page by an init script: CDP-injected, so the dashboard's CSP does not block it;
// the memo's Markdown holder counts once it has text)
await context.addInitScript(() => {
  window.__pulseDrawn = (h) => !!h.querySelector('canvas, svg, table, [data-test="error-message"], .ant-alert')
    || (!!h.closest('.dashboard-markdown') && h.innerText.trim().length > 0);
  window.__pulseInView = (h) => { const r = h.getBoundingClientRect(); return r.bottom > 0 && r.top < window.innerHeight; };
});

function chartDataLoaded() {  // distinct charts whose first data request of this page load has answered
  return new Set(responses.filter((x) => x.sliceId && x.status < 400).map((x) => x.sliceId)).size;
}

async function rendered(expectHolders, expectCharts) {
  // every chart's data has arrived, and every chart in the viewport is drawn (Superset draws charts
  // below the fold when they scroll into view: DASHBOARD_VIRTUALIZATION)
  await waitUntil(() => chartDataLoaded() >= expectCharts, `data for all ${expectCharts} charts`, { timeout: 120000 });
  await page.waitForFunction((n) => {
    const holders = [...document.querySelectorAll('.dashboard-component-chart-holder')];
    if (holders.length < n) return false;
    if (document.querySelector('.dashboard-component-chart-holder [data-test="loading-indicator"]')) return false;
    return holders.filter(window.__pulseInView).every(window.__pulseDrawn);
  }, expectHolders, { timeout: 120000, polling: 25 });
}

async function allDrawn() {
  // scroll through the dashboard as a reader would, until every chart holder has drawn
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  for (let y = 0; y < height; y += 800) {
    await page.evaluate((yy) => window.scrollTo(0, yy), y);
    await page.waitForFunction(() => [...document.querySelectorAll('.dashboard-component-chart-holder')]
      .filter(window.__pulseInView).every(window.__pulseDrawn), null, { timeout: 60000, polling: 25 });
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  return page.$$eval('.dashboard-component-chart-holder', (hs) => hs.filter((h) => !window.__pulseDrawn(h)).length);
}

async function picture(file) {
  // the whole dashboard in one picture: grow the viewport to the page (so every chart is in view and
  // none is virtualized away mid-shot), wait until every chart is drawn again, shoot, shrink back
  const viewport = page.viewportSize();
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, height) });
  await page.waitForFunction(() => [...document.querySelectorAll('.dashboard-component-chart-holder')]
    .every(window.__pulseDrawn), null, { timeout: 60000, polling: 50 });
  // ECharts animates its drawing: the picture is taken once every canvas looks the same twice in a row
  await waitStable(() => page.$$eval('canvas', (cs) => cs.map((c) => c.toDataURL().length).join(',')), 'the charts to finish drawing');
  await page.screenshot({ path: path.join(outDir, file) });
  await page.setViewportSize(viewport);
}

async function settle(expectHolders, expectCharts) {
  await rendered(expectHolders, expectCharts);
  await page.waitForLoadState('networkidle');
}

async function chartErrors() {
  return page.$$eval('.dashboard-component-chart-holder', (hs) => hs
    .filter((h) => h.querySelector('[data-test="error-message"], .ant-alert-error, .alert-danger'))
    .map((h) => h.innerText.slice(0, 300)));
}

for (const slug of slugs) {
  const r = { loads_ms: [], data_ms: [], render_ms: [], all_drawn_ms: [], errors: [], charts: 0 };
  // how many charts the dashboard has, from Superset itself (the page shows more holders: markdown)
  const charts = (await (await page.request.get(`${base}/api/v1/dashboard/${slug}/charts`)).json()).result.length;
  for (let i = 0; i < repeats; i++) {
    responses = [];
    const t0 = Date.now();
    await page.goto(`${base}/superset/dashboard/${slug}/?standalone=0`);
    await page.waitForSelector('.dashboard-component-chart-holder', { timeout: 60000 });
    const holders = await page.$$eval('.dashboard-component-chart-holder', (hs) => hs.length);
    await rendered(holders, charts);
    r.render_ms.push(Date.now() - t0);  // all data in, everything on screen drawn: what a person waits for
    r.data_ms.push(Math.max(...responses.filter((x) => x.sliceId).map((x) => x.at)) - t0);  // last chart's data arrived
    const undrawn = await allDrawn();
    r.all_drawn_ms.push(Date.now() - t0);  // … and every chart below the fold drawn after scrolling through
    if (undrawn) throw new Error(`${undrawn} chart(s) never drew on ${slug}`);
    await page.waitForLoadState('networkidle');
    r.loads_ms.push(Date.now() - t0);
    r.charts = charts;
  }
  r.errors = await chartErrors();
  r.failed_requests = await Promise.all(responses.filter((x) => x.status >= 400)
    .map(async (x) => ({ slice: x.sliceId, status: x.status, body: JSON.stringify(await x.body).slice(0, 300) })));
  const before = await dataBySlice();
  await allDrawn();
  const shot = `${slug}${process.env.SHOT_SUFFIX || ''}.png`;  // SHOT_SUFFIX: another source's pictures apart
  await picture(shot);
  r.screenshot = path.join(outDir, shot);
  r.text = (await page.innerText('body')).slice(0, 50000);  // what the page says: titles, empty states
  if (process.env.WATCH_REFRESH_S) {  // nobody touches the page: only the dashboard's own refresh can ask for data
    // wait until every chart has asked again twice on its own, within WATCH_REFRESH_S
    responses = [];
    const t0 = Date.now();
    const bySlice = () => {
      const n = {};
      for (const x of responses.filter((x) => x.sliceId)) n[x.sliceId] = (n[x.sliceId] || 0) + 1;
      return n;
    };
    await waitUntil(() => Object.keys(bySlice()).length >= charts && Math.min(...Object.values(bySlice())) >= 2,
      'every chart to refresh twice by itself', { timeout: Number(process.env.WATCH_REFRESH_S) * 1000, interval: 250 });
    r.refresh_seconds = (Date.now() - t0) / 1000;
    r.refresh_requests = responses.filter((x) => x.sliceId).length;
    r.refresh_by_slice = bySlice();
    r.refresh_failed = responses.filter((x) => x.sliceId && x.status >= 400).length;
    r.refreshed_data = await dataBySlice();
  }

  if (filterValue && (await page.$('[data-test="NATIVE_FILTER-platform"]'))) {
    responses = [];
    await page.locator('[data-test="NATIVE_FILTER-platform"]').first().click();
    await page.keyboard.type(filterValue);
    await page.locator(`.ant-select-item-option[title="${filterValue}"]`).first().click();
    await page.keyboard.press('Escape');
    await page.click('[data-test="filter-bar__apply-button"]');
    const holders = await page.$$eval('.dashboard-component-chart-holder', (hs) => hs.length);
    await settle(holders, r.charts);
    await allDrawn();
    const after = await dataBySlice();
    r.filter = {
      value: filterValue,
      requested: Object.keys(after).length,
      changed: Object.keys(after).filter((k) => after[k] !== before[k]).length,
      unchanged: Object.keys(after).filter((k) => after[k] === before[k]).map(Number),
      with_filter: responses.filter((x) => JSON.stringify(x.request?.queries?.[0]?.filters || []).includes(filterValue)).length,
      errors: await chartErrors(),
      data: after,  // each chart's data under the filter: the test checks values, not only that they changed
    };
    await page.evaluate(() => window.scrollTo(0, 0));
    await picture(`${slug}-filtered.png`);
  }
  report.dashboards[slug] = r;
}
await browser.close();
console.log(JSON.stringify(report));
