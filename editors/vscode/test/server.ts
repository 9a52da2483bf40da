// What the end-to-end tests share: the model, the server command, a document, time limits.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { findServer, nodeLookup } from '../src/discovery';

/** A released model folder; the end-to-end tests skip without one. */
export const MODEL = process.env.FILLPOINT_MODEL;
export const SKIP = !MODEL && 'set FILLPOINT_MODEL to a release folder';
export const ROOT = path.join(__dirname, '..', '..');
export const PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
/** One protocol step on a busy 2-core machine, model loading included. */
export const STEP_MS = 60_000;
const REPO_PYTHON = path.join(ROOT, '..', '..', '.venv', 'bin', 'python');

export const TEXT = [
  'import os',
  '',
  '',
  'def join_all(parts):',
  '    return os.path.join(*parts)',
  '',
  '',
  'def main(paths):',
  '    joined = join_',
  '    return joined',
  '',
].join('\n');
/** The end of `    joined = join_` (0-based line 8). */
export const AFTER_JOIN = { line: 8, character: '    joined = join_'.length };

/** package.json's default for every `fillpoint.*` setting. */
export function defaults(): Record<string, unknown> {
  const properties: Record<string, { default?: unknown }> =
    PACKAGE.contributes.configuration.properties;
  return Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, v.default]));
}

/** `python -m fillpoint.lsp serve` with $FILLPOINT_PYTHON, else what the extension would find. */
export function serverCommand(): string[] {
  const python = process.env.FILLPOINT_PYTHON;
  const wanted = python
    ? { command: [python, '-m', 'fillpoint.lsp', 'serve'], pythonPaths: [] }
    : { pythonPaths: fs.existsSync(REPO_PYTHON) ? [REPO_PYTHON] : [] };
  const found = findServer(wanted, nodeLookup());
  if (!found.ok) throw new Error(found.error);
  return [found.server.command, ...found.server.args];
}

/** The promise's value, or an error naming what did not finish in time. */
export function bounded<T>(promise: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
