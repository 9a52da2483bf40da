#!/usr/bin/env node
// Fails when package.json's `fillpoint.*` settings drift from the server's settings_schema(),
// or when README.md does not mention one of them.
//
//   node scripts/check-settings.mjs           check (exit 1 on drift)
//   node scripts/check-settings.mjs --write   rewrite package.json from the schema
//
// The interpreter that has fillpoint installed: $PYTHON, else the repository's .venv, else python3.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = join(HERE, '..', 'package.json');
const README = join(HERE, '..', 'README.md');
const REPO_PYTHON = join(HERE, '..', '..', '..', '.venv', 'bin', 'python');
const SECTION = 'fillpoint';
const CLIENT_ONLY = ['server.', 'trace.']; // read by the extension, never sent to the server
const FIELDS = ['type', 'default', 'enum', 'minimum', 'maximum', 'description'];
const SCHEMA_CODE =
  'import json; from fillpoint.lsp.options import settings_schema; print(json.dumps(settings_schema()))';

function serverSchema() {
  const python = process.env.PYTHON || (existsSync(REPO_PYTHON) ? REPO_PYTHON : 'python3');
  try {
    return JSON.parse(execFileSync(python, ['-c', SCHEMA_CODE], { encoding: 'utf8' }));
  } catch (err) {
    console.error(
      `check-settings: could not read the schema with ${python} (set $PYTHON): ${err.message}`,
    );
    process.exit(2);
  }
}

/** The package.json entry a server option should have (only the fields that come from the schema). */
function expectedEntry(option) {
  return Object.fromEntries(FIELDS.filter((f) => f in option).map((f) => [f, option[f]]));
}

function problems(properties, schema) {
  const found = [];
  for (const [name, option] of Object.entries(schema.properties)) {
    const key = `${SECTION}.${name}`;
    const entry = properties[key];
    if (entry === undefined) {
      found.push(`${key}: missing from package.json`);
      continue;
    }
    for (const [field, want] of Object.entries(expectedEntry(option))) {
      if (!isDeepStrictEqual(entry[field], want)) {
        found.push(
          `${key}.${field}: package.json has ${JSON.stringify(entry[field])}, server has ${JSON.stringify(want)}`,
        );
      }
    }
    for (const field of FIELDS.filter((f) => !(f in option) && f in entry)) {
      found.push(`${key}.${field}: in package.json but not in the server's schema`);
    }
  }
  for (const key of Object.keys(properties)) {
    const name = key.slice(SECTION.length + 1);
    const clientOnly = CLIENT_ONLY.some((prefix) => name.startsWith(prefix));
    if (!key.startsWith(`${SECTION}.`) || (!clientOnly && !(name in schema.properties))) {
      found.push(
        `${key}: not a server option (nor ${CLIENT_ONLY.map((p) => `${SECTION}.${p}*`).join(', ')})`,
      );
    }
  }
  const readme = readFileSync(README, 'utf8');
  for (const key of Object.keys(properties).filter((k) => !readme.includes(`\`${k}\``))) {
    found.push(`${key}: not described in README.md`);
  }
  return found;
}

/** Server options in schema order (keeping extra fields such as `order`), then client-only ones. */
function rewritten(properties, schema) {
  const out = {};
  for (const [name, option] of Object.entries(schema.properties)) {
    const key = `${SECTION}.${name}`;
    const kept = Object.fromEntries(
      Object.entries(properties[key] ?? {}).filter(([f]) => !FIELDS.includes(f)),
    );
    out[key] = { ...expectedEntry(option), ...kept };
  }
  for (const [key, entry] of Object.entries(properties)) {
    if (CLIENT_ONLY.some((prefix) => key.startsWith(`${SECTION}.${prefix}`))) {
      out[key] = entry;
    }
  }
  return out;
}

const pkg = JSON.parse(readFileSync(PACKAGE, 'utf8'));
const configuration = pkg.contributes.configuration;
const schema = serverSchema();
if (process.argv.includes('--write')) {
  configuration.properties = rewritten(configuration.properties ?? {}, schema);
  writeFileSync(PACKAGE, JSON.stringify(pkg, null, 2) + '\n');
  console.log(
    `check-settings: wrote ${Object.keys(schema.properties).length} server settings to package.json`,
  );
}
const found = problems(configuration.properties ?? {}, schema);
if (found.length > 0) {
  console.error(
    'check-settings: drift (package.json: npm run check-settings -- --write; README.md: by hand):',
  );
  for (const line of found) console.error(`  ${line}`);
  process.exit(1);
}
console.log(
  `check-settings: ${Object.keys(schema.properties).length} server settings match settings_schema()`,
);
