import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { serverKeys, serverSettings } from '../src/settings';
import { render } from '../src/status';

const PACKAGE = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'),
);

describe('serverKeys', () => {
  it("lists package.json's server options and leaves out the client's own", () => {
    assert.deepEqual(serverKeys(PACKAGE), [
      'modelPath',
      'maxItems',
      'inline',
      'midToken',
      'lineBeam',
      'debounceMs',
      'prefetch',
      'logLevel',
    ]);
  });

  it('copes with a package.json without settings', () => {
    assert.deepEqual(serverKeys({}), []);
  });
});

describe('serverSettings', () => {
  const values: Record<string, unknown> = {
    modelPath: '',
    maxItems: 5,
    inline: false,
    midToken: 'naive',
  };

  it('maps an empty model path to null and skips settings VS Code does not know', () => {
    const settings = serverSettings([...Object.keys(values), 'future'], (key) => values[key]);
    assert.deepEqual(settings, { modelPath: null, maxItems: 5, inline: false, midToken: 'naive' });
  });

  it('expands the model path', () => {
    const settings = serverSettings(
      ['modelPath'],
      () => ' ~/m ',
      (p) => p.replace('~', '/home/u'),
    );
    assert.deepEqual(settings, { modelPath: '/home/u/m' });
  });

  it('keeps a null model path null', () => {
    assert.deepEqual(
      serverSettings(['modelPath'], () => null),
      { modelPath: null },
    );
  });
});

describe('status bar text', () => {
  it('shows each state', () => {
    assert.equal(render({ state: 'starting', inline: true }).text, '$(loading~spin) fillpoint');
    assert.equal(render({ state: 'stopped', inline: true }).text, '$(circle-slash) fillpoint');
    assert.equal(
      render({ state: 'failed', inline: false }).text,
      '$(error) fillpoint (inline off)',
    );
    const running = render({
      state: 'running',
      inline: true,
      model: 'm',
      lastMs: 41.6,
      latencyMs: { completion: 41.6 },
    });
    assert.equal(running.text, '$(sparkle) fillpoint m 42 ms');
    assert.match(running.tooltip, /last completion list: 42 ms/);
  });

  it('shows a model that is loading or failed', () => {
    assert.equal(
      render({ state: 'running', inline: true, modelState: 'loading' }).text,
      '$(loading~spin) fillpoint',
    );
    const failed = render({
      state: 'running',
      inline: true,
      modelState: 'error',
      message: 'no model.onnx',
    });
    assert.equal(failed.text, '$(error) fillpoint');
    assert.match(failed.tooltip, /no model\.onnx/);
  });
});
