// Waiting for a condition, not for time (the browser scripts' twin of pulse.common.waiting.wait_until):
// poll `check` until it returns something truthy, or fail after `timeout` ms saying what was awaited.
export async function waitUntil(check, what, { timeout = 60000, interval = 25 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

// Wait until what `snapshot` returns is the same on two polls in a row `interval` ms apart: a chart's
// drawing animation has ended, a graph has stopped laying itself out.
export async function waitStable(snapshot, what, { timeout = 30000, interval = 200 } = {}) {
  let last = await snapshot();
  return waitUntil(async () => {
    const now = await snapshot();
    const same = now === last;
    last = now;
    return same;
  }, what, { timeout, interval });
}
