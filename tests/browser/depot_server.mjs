// Starts a real `depot serve` for the node tests: the given services on a free port, with the
// repository's scripts, in a work directory of the caller's; resolves with its port and a stop
// function once its "listening" log line is out, and fails at once if a service did not mount.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repository = path.resolve(here, '../..');
export const depotBinary = process.env.DEPOT_BINARY ?? path.join(repository, 'build/depot');
export const artifactDir = process.env.DEPOT_ARTIFACT_DIR ?? path.join(repository, 'build');
const STARTUP_TIMEOUT_MS = 15000;

// `services`: the config's services list. `unset`: environment variables the caller's shell
// might have that would override the services' config sections.
export async function startDepot({ workDir, services, unset = [] }) {
  const config = {
    host: '127.0.0.1',
    port: 0,
    data_dir: path.join(workDir, 'data'),
    scripts_dir: path.join(repository, 'scripts'),
    log_level: 'info',
    services,
  };
  const configFile = path.join(workDir, 'depot.json');
  await writeFile(configFile, JSON.stringify(config));
  const env = { ...process.env };
  for (const name of [...unset, 'DEPOT_PORT', 'DEPOT_CONFIG']) delete env[name];
  const depot = spawn(depotBinary, ['serve', '--config', configFile, '--threads', '1'], {
    cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`depot did not start:\n${output}`)), STARTUP_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      for (const line of output.split('\n')) {
        if (line.includes('"service not mounted"')) {
          clearTimeout(timer);
          reject(new Error(`a service did not mount: ${line}`));
          return;
        }
        const match = line.match(/"msg":"listening".*"port":(\d+)/);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
          return;
        }
      }
    };
    depot.stdout.on('data', onData);
    depot.stderr.on('data', onData);
    depot.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`depot exited with ${code}:\n${output}`));
    });
  }).catch((error) => {
    depot.kill('SIGKILL');
    throw error;
  });
  const stop = async () => {
    if (depot.exitCode !== null || depot.signalCode !== null) return;
    const exited = new Promise((resolve) => depot.once('exit', resolve));
    depot.kill('SIGTERM');
    await exited;
  };
  return { port, stop, log: () => output };
}
