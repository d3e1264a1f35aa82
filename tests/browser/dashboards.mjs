// Opens every Pulse dashboard in Debian's chromium as a person would: log in through the form, wait
// until every chart has rendered, fail on any chart error, apply the Platform filter and check that
// the charts' data changed, save screenshots. Prints one JSON report on stdout.
// Env: SUPERSET_URL, SUPERSET_USER, SUPERSET_PASSWORD (never on the command line), DASHBOARDS
// (comma-separated slugs), FILTER_VALUE (a platform), OUT_DIR (screenshots), REPEATS (timing runs).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

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
page.on('response', async (resp) => {
  if (!resp.url().includes('/api/v1/chart/data')) return;
  let body = null, req = null;
  try { req = JSON.parse(resp.request().postData() || '{}'); } catch { req = {}; }
  try { body = await resp.json(); } catch { body = null; }
  responses.push({ status: resp.status(), sliceId: req?.form_data?.slice_id, request: req, body });
});

await page.goto(`${base}/login/`);
await page.fill('[data-test="username-input"]', process.env.SUPERSET_USER);
await page.fill('[data-test="password-input"]', process.env.SUPERSET_PASSWORD);
await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.keyboard.press('Enter')]);

async function rendered(expectCharts) {
  // every chart holder has drawn something (canvas, svg, table, big number) and nothing is loading
  await page.waitForFunction((n) => {
    const holders = [...document.querySelectorAll('.dashboard-component-chart-holder')];
    if (holders.length < n) return false;
    if (document.querySelector('.dashboard-component-chart-holder [data-test="loading-indicator"], .dashboard-component-chart-holder .loading')) return false;
    return holders.every((h) => h.querySelector('canvas, svg, table, .header-line, [data-test="error-message"], .alert, .ant-alert') || h.innerText.trim().length > 0);
  }, expectCharts, { timeout: 120000, polling: 50 });
}

async function settle(expectCharts) {
  await rendered(expectCharts);
  await page.waitForLoadState('networkidle');
}

async function chartErrors() {
  return page.$$eval('.dashboard-component-chart-holder', (hs) => hs
    .filter((h) => h.querySelector('[data-test="error-message"], .ant-alert-error, .alert-danger'))
    .map((h) => h.innerText.slice(0, 300)));
}

for (const slug of slugs) {
  const r = { loads_ms: [], render_ms: [], errors: [], charts: 0 };
  for (let i = 0; i < repeats; i++) {
    responses = [];
    const t0 = Date.now();
    await page.goto(`${base}/superset/dashboard/${slug}/?standalone=0`);
    await page.waitForSelector('.dashboard-component-chart-holder', { timeout: 60000 });
    const holders = await page.$$eval('.dashboard-component-chart-holder', (hs) => hs.length);
    await rendered(holders);
    r.render_ms.push(Date.now() - t0);  // every chart drawn: what a person waits for
    await page.waitForLoadState('networkidle');
    r.loads_ms.push(Date.now() - t0);
    r.charts = holders;
  }
  r.errors = await chartErrors();
  r.failed_requests = responses.filter((x) => x.status >= 400).map((x) => ({ slice: x.sliceId, status: x.status, body: JSON.stringify(x.body).slice(0, 300) }));
  const before = Object.fromEntries(responses.filter((x) => x.sliceId).map((x) => [x.sliceId, JSON.stringify(x.body?.result?.map((q) => q.data))]));
  await page.screenshot({ path: path.join(outDir, `${slug}.png`), fullPage: true });
  r.screenshot = path.join(outDir, `${slug}.png`);

  if (filterValue && (await page.$('[data-test="NATIVE_FILTER-platform"]'))) {
    responses = [];
    await page.locator('[data-test="NATIVE_FILTER-platform"]').first().click();
    await page.keyboard.type(filterValue);
    await page.locator(`.ant-select-item-option[title="${filterValue}"]`).first().click();
    await page.keyboard.press('Escape');
    await page.click('[data-test="filter-bar__apply-button"]');
    await page.waitForTimeout(500);
    const holders = await page.$$eval('.dashboard-component-chart-holder', (hs) => hs.length);
    await settle(holders);
    const after = Object.fromEntries(responses.filter((x) => x.sliceId).map((x) => [x.sliceId, JSON.stringify(x.body?.result?.map((q) => q.data))]));
    r.filter = {
      value: filterValue,
      requested: Object.keys(after).length,
      changed: Object.keys(after).filter((k) => after[k] !== before[k]).length,
      unchanged: Object.keys(after).filter((k) => after[k] === before[k]).map(Number),
      with_filter: responses.filter((x) => JSON.stringify(x.request?.queries?.[0]?.filters || []).includes(filterValue)).length,
      errors: await chartErrors(),
    };
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(outDir, `${slug}-filtered.png`), fullPage: true });
  }
  report.dashboards[slug] = r;
}
await browser.close();
console.log(JSON.stringify(report));
