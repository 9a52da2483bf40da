// The packaged bundle (dist/extension.js, built by `npm run build`) loads on its own: it needs
// nothing at run time but `vscode` and Node's built-in modules.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import Module, { builtinModules } from 'node:module';
import * as path from 'node:path';
import { it } from 'node:test';

const BUNDLE = path.join(__dirname, '..', '..', 'dist', 'extension.js');

/** A stand-in for any value of the `vscode` API: callable, constructible, extensible. */
function anything(): unknown {
  const target = function () {} as unknown as object;
  return new Proxy(target, {
    get: (t, name) =>
      name === 'prototype'
        ? Reflect.get(t, name)
        : name === Symbol.toPrimitive
          ? () => ''
          : anything(),
    apply: () => anything(),
    construct: () => anything() as object,
  });
}

it(
  'the bundle needs only vscode and built-in modules',
  { skip: !fs.existsSync(BUNDLE) && 'run npm run build' },
  () => {
    const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
    const original = loader._load;
    const requested: string[] = [];
    loader._load = function (request: string, ...rest: unknown[]) {
      if (request === 'vscode') return anything();
      if (!path.isAbsolute(request)) requested.push(request);
      return original.call(this, request, ...rest);
    };
    try {
      const bundle = require(BUNDLE) as { activate?: unknown; deactivate?: unknown };
      assert.equal(typeof bundle.activate, 'function');
      assert.equal(typeof bundle.deactivate, 'function');
    } finally {
      loader._load = original;
    }
    const builtin = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    assert.deepEqual(
      requested.filter((r) => !builtin.has(r)),
      [],
    );
  },
);
