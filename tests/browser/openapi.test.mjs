// The OpenAPI documents of the shipped services, fetched from a real `depot serve`: each is valid
// OpenAPI 3.1 for a kept validator (@apidevtools/swagger-parser), lists exactly the routes its
// services registered (as the route recorder saw them registered), and documents each of them
// completely (summary, responses with descriptions and bodies). Run by CTest (openapi_documents)
// or `node --test openapi.test.mjs` in this folder.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { documents, startDocumentedServices } from './documented_services.mjs';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];

let workDir;
let depot;
let baseUrl;

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'depot-openapi-'));
  depot = await startDocumentedServices(workDir);
  baseUrl = `http://127.0.0.1:${depot.port}`;
});

after(async () => {
  await depot?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function fetchJson(url) {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url}: ${response.status}`);
  assert.match(response.headers.get('content-type'), /^application\/json/);
  return response.json();
}

function operations(document) {
  const found = [];
  for (const [pathName, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      if (item[method]) found.push({ key: `${method.toUpperCase()} ${pathName}`, operation: item[method] });
    }
  }
  return found;
}

// "GET /v1/cache/{cache_id}" for each route a service registered under `prefix` and left in the
// document, from the recorder's list.
function registeredUnder(routes, prefix) {
  return routes
    .filter((route) => route.documented && (route.mounts === null || route.mounts.includes(prefix)))
    .map((route) => `${route.method} ${route.pattern.replace(/[:*]([^/]+)/g, '{$1}')}`);
}

for (const [prefix, services] of Object.entries(documents)) {
  const base = prefix === '/' ? '' : prefix;

  test(`${base}/openapi.json (${services.join(', ')}) is valid OpenAPI 3.1`, async () => {
    const document = await fetchJson(`${baseUrl}${base}/openapi.json`);
    assert.equal(document.openapi, '3.1.0');
    assert.deepEqual(document.servers, [{ url: prefix }]);
    assert.deepEqual(document.tags.map((tag) => tag.name), services);
    // validate() changes what it is given (it dereferences): hand it a copy.
    await SwaggerParser.validate(structuredClone(document));
  });

  test(`${base}/openapi.json lists exactly the routes its services registered`, async () => {
    const document = await fetchJson(`${baseUrl}${base}/openapi.json`);
    const expected = [];
    for (const service of services) {
      // The recorder's route is a route of the service like the others, under every mount.
      const service_prefix = Object.entries(documents).find(([, names]) => names.length === 1 && names[0] === service)[0];
      const { routes } = await fetchJson(`${baseUrl}${service_prefix}/registered-routes`);
      assert.ok(routes.length > 0, `${service} registered routes`);
      expected.push(...registeredUnder(routes, prefix));
    }
    const listed = operations(document).map(({ key }) => key);
    assert.deepEqual([...listed].sort(), [...expected].sort());
    assert.equal(new Set(listed).size, listed.length);
  });

  test(`${base}/openapi.json documents every operation completely`, async () => {
    const document = await fetchJson(`${baseUrl}${base}/openapi.json`);
    for (const { key, operation } of operations(document)) {
      assert.ok(operation.summary, `${key}: a summary`);
      assert.equal(operation.tags.length, 1, `${key}: its service's tag`);
      const statuses = Object.keys(operation.responses);
      assert.ok(!statuses.includes('default') || statuses.length > 1, `${key}: documented responses`);
      assert.ok(statuses.some((status) => /^[23]/.test(status)), `${key}: a success answer`);
      assert.ok(statuses.some((status) => /^[45]/.test(status)), `${key}: its error answers`);
      for (const [status, response] of Object.entries(operation.responses)) {
        assert.ok(response.description, `${key} ${status}: a description`);
        if (!/^(204|3..)$/.test(status)) assert.ok(response.content, `${key} ${status}: a body`);
      }
    }
  });
}

test('the validator refuses a broken document (so the checks above can fail)', async () => {
  const document = await fetchJson(`${baseUrl}/staging/openapi.json`);
  const broken = structuredClone(document);
  delete broken.paths['/stage-data/'].post.responses['200'].description;
  broken.paths['/stage-data/'].post.parameters[0].in = 'body';
  await assert.rejects(SwaggerParser.validate(broken));
});

test('the pages skip the service\'s before filters and serve only their own assets', async () => {
  const response = await fetch(`${baseUrl}/servicex/openapi.json`);
  // The users service's before filter (CORS) does not run for the pages.
  assert.equal(response.headers.get('access-control-allow-origin'), null);
  // Only the pages' own assets, answered like any unknown path of the service (file_cache's shape).
  const unknown = await fetch(`${baseUrl}/docs/assets/index.html`);
  assert.equal(unknown.status, 404);
  assert.deepEqual(await unknown.json(), { status: 'error' });
  const escaping = await fetch(`${baseUrl}/docs/assets/..%2F..%2Fpackage.json`);
  assert.equal(escaping.status, 404);
  const asset = await fetch(`${baseUrl}/docs/assets/swagger-ui-bundle.js`);
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get('content-type'), /^text\/javascript/);
});
