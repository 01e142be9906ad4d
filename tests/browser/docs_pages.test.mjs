// The API pages in headless Chromium against a real `depot serve` running the shipped services
// (documented_services.mjs): <mount>/docs (Swagger UI) shows every operation of the mount's
// document, and expands one with its parameters and answers; <mount>/redoc (ReDoc) renders them
// too; no page asks for anything but Depot (the assets are served from disk, so the pages work
// offline); pages under a prefix reach their own document. Leaves build/openapi-docs.png and
// build/openapi-redoc.png. Run by CTest (browser_docs_pages, label `browser`) or
// `node --test docs_pages.test.mjs` in this folder.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchWithDepot } from './chromium_page.mjs';
import { artifactDir } from './depot_server.mjs';
import { startDocumentedServices } from './documented_services.mjs';

let workDir;
let depot;
let baseUrl;
let browser;
let page;
let pageErrors;
const foreignRequests = [];

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'depot-docs-pages-'));
  ({ depot, browser, page, pageErrors } = await launchWithDepot(startDocumentedServices(workDir)));
  baseUrl = `http://127.0.0.1:${depot.port}`;
  // What reached the network: a request the page's Content-Security-Policy stopped never left.
  const foreign = (request) => !/^(data|blob):/.test(request.url()) && !request.url().startsWith(`${baseUrl}/`);
  page.on('requestfinished', (request) => { if (foreign(request)) foreignRequests.push(request.url()); });
  page.on('requestfailed', (request) => {
    if (foreign(request) && request.failure()?.errorText !== 'csp') foreignRequests.push(request.url());
  });
});

after(async () => {
  await Promise.all([browser?.close(), depot?.stop()]);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function documentOf(prefix) {
  const response = await fetch(`${baseUrl}${prefix}/openapi.json`);
  assert.equal(response.status, 200);
  return response.json();
}

// "POST /v1/cache_id" for each operation of the document, as Swagger UI names them.
function operationsOf(document) {
  const list = [];
  for (const [pathName, item] of Object.entries(document.paths)) {
    for (const method of Object.keys(item)) list.push({ method: method.toUpperCase(), path: pathName, operation: item[method] });
  }
  return list;
}

async function swaggerOperations() {
  await page.locator('.opblock').first().waitFor();
  return page.locator('.opblock').evaluateAll((blocks) => blocks.map((block) => {
    const method = block.querySelector('.opblock-summary-method').textContent.trim();
    const pathName = block.querySelector('.opblock-summary-path').getAttribute('data-path');
    return `${method} ${pathName}`;
  }));
}

test('/docs shows every operation of the shared root\'s document, grouped by service', async () => {
  const document = await documentOf('');
  await page.goto(`${baseUrl}/docs`);
  assert.equal(await page.title(), 'KBase file cache, Hello, Kentik image cache - Swagger UI');
  const shown = await swaggerOperations();
  const expected = operationsOf(document).map(({ method, path: pathName }) => `${method} ${pathName}`);
  assert.deepEqual([...shown].sort(), [...expected].sort());
  const tags = await page.locator('.opblock-tag').allTextContents();
  for (const service of ['file_cache', 'hello', 'image_cache']) {
    assert.ok(tags.some((tag) => tag.startsWith(service)), `a section for ${service}`);
  }
});

test('an operation opens with its parameters, body and answers', async () => {
  const block = page.locator('.opblock-post', { has: page.locator('[data-path="/v1/cache/{cache_id}"]') });
  await block.locator('.opblock-summary').click();
  await block.locator('.parameters-container').waitFor();
  assert.match(await block.locator('table.parameters').textContent(), /cache_id/);
  assert.match(await block.locator('.opblock-section-request-body').textContent(), /multipart\/form-data/);
  const statuses = await block.locator('.responses-table tbody tr.response .response-col_status').allTextContents();
  assert.deepEqual(statuses.map((status) => status.trim()).sort(), ['200', '400', '403', '404', '413', '500']);
  await page.screenshot({ path: path.join(artifactDir, 'openapi-docs.png'), fullPage: true });
});

test('/redoc renders the operations', async () => {
  const document = await documentOf('');
  await page.goto(`${baseUrl}/redoc`);
  await page.locator('.api-content').waitFor();
  for (const { operation } of operationsOf(document)) {
    await page.locator(`[id="operation/${operation.operationId}"]`).first().waitFor({ state: 'attached' });
  }
  assert.match(await page.locator('.api-info h1').textContent(), /KBase file cache, Hello, Kentik image cache/);
  await page.screenshot({ path: path.join(artifactDir, 'openapi-redoc.png') });
});

test('under a prefix the pages show that prefix\'s document', async () => {
  await page.goto(`${baseUrl}/staging/docs`);
  assert.equal(await page.title(), 'SKA Staging Service - Swagger UI');
  const document = await documentOf('/staging');
  const shown = await swaggerOperations();
  assert.equal(shown.length, operationsOf(document).length);
  assert.ok(shown.includes('POST /stage-data/'));
  await page.goto(`${baseUrl}/servicex/redoc`);
  await page.locator('[id="operation/users_post_login"]').waitFor({ state: 'attached' });
});

test('no page asked for anything but Depot, and none had a script error', () => {
  assert.deepEqual(foreignRequests, []);
  assert.deepEqual(pageErrors, []);
});
