// Headless Debian chromium for the page tests, started beside the Depot the test needs (both
// take about a second): resolves with the browser, one page, and the page's script errors.
import { chromium } from 'playwright-core';

export async function launchWithDepot(depotStarting) {
  const [depot, browser] = await Promise.all([
    depotStarting,
    chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' }),
  ]);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(20000); // generous: CI runs it beside the other tests on two cores
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  return { depot, browser, page, pageErrors };
}
