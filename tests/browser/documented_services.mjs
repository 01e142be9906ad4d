// The five shipped services as the OpenAPI tests run them: each through the route recorder
// (tests/support/route_recorder.lua), file_cache, hello and image_cache sharing the root as in
// config/depot.json and each also alone under a prefix of its own, so that every service has a
// document of its own as well as the shared one. No upstream is called: the auth and Kentik URLs
// lead nowhere.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { repository, startDepot } from './depot_server.mjs';

const recorder = path.join(repository, 'tests/support/route_recorder.lua');
const NOWHERE = 'http://127.0.0.1:9';

// Mount prefix → the services whose document it serves.
export const documents = {
  '/': ['file_cache', 'hello', 'image_cache'],
  '/cache': ['file_cache'],
  '/only/hello': ['hello'],
  '/only/image_cache': ['image_cache'],
  '/staging': ['staging'],
  '/servicex': ['users'],
};

export async function startDocumentedServices(workDir) {
  const source = path.join(workDir, 'source');
  const target = path.join(workDir, 'target');
  await mkdir(source, { recursive: true });
  await mkdir(target, { recursive: true });
  const services = [
    { name: 'file_cache', mount: ['/', '/cache'], config: { KBASE_AUTH_URL: NOWHERE } },
    { name: 'hello', mount: ['/', '/only/hello'] },
    { name: 'image_cache', mount: ['/', '/only/image_cache'],
      config: { KT_AUTH_EMAIL: 'docs@example.org', KT_AUTH_TOKEN: 'unused', KENTIK_API_URL: NOWHERE } },
    { name: 'staging', mount: ['/staging'], config: { SOURCE_STORAGE_PATH: source, TARGET_STORAGE_PATH: target } },
    { name: 'users', mount: ['/servicex'], config: { ENABLE_AUTH: 'false' } },
  ].map((service) => ({ ...service, script: recorder }));
  return startDepot({
    workDir,
    services,
    unset: ['KBASE_AUTH_URL', 'KT_AUTH_EMAIL', 'KT_AUTH_TOKEN', 'KENTIK_API_URL', 'SOURCE_STORAGE_PATH',
      'TARGET_STORAGE_PATH', 'ENABLE_AUTH', 'JWT_SECRET_KEY'],
  });
}
