// Opens Airflow's UI as a person would: log in through the simple auth manager's form, open a DAG run's
// graph, wait until every task node is drawn, save a screenshot. Prints one JSON report on stdout.
// Env: AIRFLOW_URL, AIRFLOW_USER, AIRFLOW_PASSWORD (never on the command line), DAG_ID, RUN_ID, OUT (PNG path).
import { chromium } from 'playwright-core';
import { waitStable } from './wait.mjs';

const base = process.env.AIRFLOW_URL.replace(/\/$/, '');
const dagId = process.env.DAG_ID || 'pulse_daily';
const runId = process.env.RUN_ID;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await (await browser.newContext({ viewport: { width: 1600, height: 900 } })).newPage();
const report = { errors: [] };
page.on('pageerror', (e) => report.errors.push(String(e)));
try {
  await page.goto(`${base}/`, { waitUntil: 'networkidle' });
  await page.locator('input[name="username"]').fill(process.env.AIRFLOW_USER);
  await page.locator('input[name="password"]').fill(process.env.AIRFLOW_PASSWORD);
  await Promise.all([page.waitForURL((u) => !u.pathname.includes('login'), { timeout: 30000 }), page.keyboard.press('Enter')]);
  report.loggedIn = true;
  await page.goto(`${base}/dags/${dagId}/runs/${encodeURIComponent(runId)}`, { waitUntil: 'networkidle' });
  await page.getByRole('button', { name: /graph/i }).first().click();
  const nodes = page.locator('.react-flow__node');
  await nodes.first().waitFor({ timeout: 30000 });
  // the graph lays itself out and fills in task states: shoot once its nodes stop changing
  await waitStable(async () => JSON.stringify(await nodes.evaluateAll((ns) => ns.map((n) => [n.innerText, n.style.transform]))),
    'the graph to settle');
  report.nodes = await nodes.allInnerTexts();
  await page.screenshot({ path: process.env.OUT, fullPage: false });
  report.screenshot = process.env.OUT;
} catch (e) {
  report.error = String(e);
  await page.screenshot({ path: process.env.OUT }).catch(() => {});
}
await browser.close();
console.log(JSON.stringify(report));
