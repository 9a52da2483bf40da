import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { commandLine, expandPath, findServer, type Lookup, nodeLookup } from '../src/discovery';

/** A machine with these programs on PATH and these interpreters that have fillpoint. */
function machine(onPath: Record<string, string>, withFillpoint: string[] = []): Lookup {
  return {
    which: (program) =>
      onPath[program] ?? (Object.values(onPath).includes(program) ? program : undefined),
    hasFillpoint: (python) => withFillpoint.includes(python),
  };
}

describe('findServer', () => {
  it('uses the configured command, resolved on PATH', () => {
    const found = findServer(
      { command: ['fp', 'serve', '--log-level', 'debug'], pythonPaths: [] },
      machine({ fp: '/opt/bin/fp', fillpoint: '/usr/bin/fillpoint' }),
    );
    assert.deepEqual(found, {
      ok: true,
      server: {
        command: '/opt/bin/fp',
        args: ['serve', '--log-level', 'debug'],
        source: 'fillpoint.server.command',
      },
    });
  });

  it('does not fall back when the configured command is missing', () => {
    const found = findServer(
      { command: ['/venv/bin/fillpoint', 'serve'], pythonPaths: [] },
      machine({ fillpoint: '/usr/bin/fillpoint' }),
    );
    assert.equal(found.ok, false);
    assert.match(
      !found.ok ? found.error : '',
      /"\/venv\/bin\/fillpoint".*not found.*Fix: set fillpoint\.server\.command/,
    );
  });

  it('treats an empty command as not set', () => {
    const found = findServer(
      { command: ['', ' '], pythonPaths: [] },
      machine({ fillpoint: '/usr/bin/fillpoint' }),
    );
    assert.deepEqual(found, {
      ok: true,
      server: { command: '/usr/bin/fillpoint', args: ['serve'], source: 'PATH' },
    });
  });

  it('prefers fillpoint on PATH to an interpreter', () => {
    const found = findServer(
      { pythonPaths: ['/venv/bin/python'] },
      machine({ fillpoint: '/usr/bin/fillpoint', '/venv/bin/python': '/venv/bin/python' }, [
        '/venv/bin/python',
      ]),
    );
    assert.ok(found.ok && found.server.source === 'PATH');
  });

  it('runs python -m fillpoint.lsp with the first interpreter that has fillpoint', () => {
    const lookup = machine(
      { '/a/python': '/a/python', '/b/python': '/b/python', python3: '/usr/bin/python3' },
      ['/b/python', '/usr/bin/python3'],
    );
    const found = findServer({ pythonPaths: ['/a/python', '/b/python'] }, lookup);
    assert.deepEqual(found, {
      ok: true,
      server: {
        command: '/b/python',
        args: ['-m', 'fillpoint.lsp', 'serve'],
        source: 'interpreter /b/python',
      },
    });
  });

  it('falls back to python3 on PATH', () => {
    const found = findServer(
      { pythonPaths: [] },
      machine({ python3: '/usr/bin/python3' }, ['/usr/bin/python3']),
    );
    assert.ok(found.ok && found.server.command === '/usr/bin/python3');
  });

  it('names every interpreter it tried and the fix', () => {
    const found = findServer(
      { pythonPaths: ['/a/python', '/missing/python'] },
      machine({ '/a/python': '/a/python', python3: '/usr/bin/python3' }),
    );
    assert.equal(found.ok, false);
    const error = !found.ok ? found.error : '';
    assert.match(error, /tried: \/a\/python, \/usr\/bin\/python3\)/);
    assert.match(error, /pip install fillpoint/);
    assert.match(error, /fillpoint\.server\.command/);
  });
});

describe('nodeLookup', () => {
  it('finds executables on PATH and by path, and checks the import', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fillpoint-lookup-'));
    try {
      const write = (name: string, body: string, mode: number) => {
        fs.writeFileSync(path.join(dir, name), body, { mode });
        return path.join(dir, name);
      };
      const good = write('good-python', '#!/bin/sh\nexit 0\n', 0o755);
      const bad = write('bad-python', '#!/bin/sh\nexit 1\n', 0o755);
      write('not-executable', 'x', 0o644);
      const lookup = nodeLookup({ PATH: ['/nonexistent', dir].join(path.delimiter) });
      assert.equal(lookup.which('good-python'), good);
      assert.equal(lookup.which(good), good);
      assert.equal(lookup.which('not-executable'), undefined);
      assert.equal(lookup.which('missing'), undefined);
      assert.equal(lookup.hasFillpoint(good), true);
      assert.equal(lookup.hasFillpoint(bad), false);
      assert.equal(lookup.hasFillpoint(path.join(dir, 'missing')), false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('expandPath', () => {
  it('expands ~, ${userHome} and ${workspaceFolder}', () => {
    assert.equal(expandPath('~/m', '/home/u', '/w'), '/home/u/m');
    assert.equal(expandPath('~', '/home/u'), '/home/u');
    assert.equal(expandPath('${userHome}/m', '/home/u'), '/home/u/m');
    assert.equal(expandPath('${workspaceFolder}/models', '/home/u', '/w'), '/w/models');
    assert.equal(expandPath('${workspaceFolder}/models', '/home/u'), '${workspaceFolder}/models');
    assert.equal(expandPath('/abs/~x', '/home/u'), '/abs/~x');
  });
});

describe('commandLine', () => {
  it('accepts a list or a single program, and drops the rest', () => {
    assert.deepEqual(commandLine(['/v/bin/fillpoint', 'serve']), ['/v/bin/fillpoint', 'serve']);
    assert.deepEqual(commandLine('/v/bin/fillpoint'), ['/v/bin/fillpoint']);
    assert.deepEqual(commandLine(['fillpoint', 3, '', 'serve']), ['fillpoint', 'serve']);
    assert.deepEqual(commandLine(undefined), []);
    assert.deepEqual(commandLine({ command: 'x' }), []);
  });
});
