// Finds the command that starts `fillpoint serve`. No `vscode` import, so it is unit-tested
// with a fake Lookup; the extension passes the real one from nodeLookup().

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A command line that runs the server over stdio, and how it was found. */
export interface ServerCommand {
  command: string;
  args: string[];
  source: string;
}

/** What the user asked for, in order of preference. */
export interface Wanted {
  /** `fillpoint.server.command`: the whole command line; empty means search. */
  command?: string[];
  /** Interpreters to try with `-m fillpoint.lsp`: configured, then the selected one. */
  pythonPaths: string[];
}

/** The machine, behind an interface so tests can describe one. */
export interface Lookup {
  /** The full path of a program found on PATH (or the path itself if it is executable). */
  which(program: string): string | undefined;
  /** Whether this interpreter can import the fillpoint server. */
  hasFillpoint(python: string): boolean;
}

export type Found = { ok: true; server: ServerCommand } | { ok: false; error: string };

const EXAMPLE = '["/path/to/venv/bin/fillpoint", "serve"]';
const FALLBACK_PYTHONS = process.platform === 'win32' ? ['python'] : ['python3', 'python'];

/** The server command: configured command, else `fillpoint` on PATH, else `python -m fillpoint.lsp`. */
export function findServer(wanted: Wanted, lookup: Lookup): Found {
  const configured = (wanted.command ?? []).filter((part) => part.trim() !== '');
  if (configured.length > 0) {
    // A configured command that does not work is an error, not a reason to run another server.
    const program = lookup.which(configured[0]);
    if (program === undefined) {
      return {
        ok: false,
        error:
          `fillpoint.server.command starts with "${configured[0]}", which was not found or is ` +
          `not executable. Fix: set fillpoint.server.command to the full command line, ` +
          `e.g. ${EXAMPLE}, or clear it to search PATH.`,
      };
    }
    return {
      ok: true,
      server: { command: program, args: configured.slice(1), source: 'fillpoint.server.command' },
    };
  }
  const onPath = lookup.which('fillpoint');
  if (onPath !== undefined) {
    return { ok: true, server: { command: onPath, args: ['serve'], source: 'PATH' } };
  }
  const tried: string[] = [];
  for (const candidate of unique([...wanted.pythonPaths, ...FALLBACK_PYTHONS])) {
    const python = lookup.which(candidate);
    if (python === undefined) {
      continue;
    }
    tried.push(python);
    if (lookup.hasFillpoint(python)) {
      const args = ['-m', 'fillpoint.lsp', 'serve'];
      return { ok: true, server: { command: python, args, source: `interpreter ${python}` } };
    }
  }
  const interpreters = tried.length > 0 ? tried.join(', ') : 'none found';
  return {
    ok: false,
    error:
      `Could not find the fillpoint language server: "fillpoint" is not on PATH, and no ` +
      `Python interpreter can import fillpoint (tried: ${interpreters}). Fix: run ` +
      `"pip install fillpoint" in your project's environment and select that interpreter ` +
      `(Python: Select Interpreter) or set fillpoint.server.pythonPath, or set ` +
      `fillpoint.server.command, e.g. ${EXAMPLE}.`,
  };
}

/** `fillpoint.server.command` as written in settings.json: a list, or one program as a string. */
export function commandLine(value: unknown): string[] {
  const parts = Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
  return parts.filter((part): part is string => typeof part === 'string' && part.trim() !== '');
}

/** `~`, `${userHome}` and `${workspaceFolder}` expanded, as users write them in settings. */
export function expandPath(value: string, home: string, workspaceFolder?: string): string {
  let out = value.replaceAll('${userHome}', home);
  if (workspaceFolder !== undefined) {
    out = out.replaceAll('${workspaceFolder}', workspaceFolder);
  }
  if (out === '~' || out.startsWith('~/') || out.startsWith('~\\')) {
    out = home + out.slice(1);
  }
  return out;
}

/** The real machine: PATH search with the platform's rules, and an import check. */
export function nodeLookup(env: NodeJS.ProcessEnv = process.env): Lookup {
  const windows = process.platform === 'win32';
  const extensions = windows ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  const executable = (file: string): boolean => {
    try {
      fs.accessSync(file, windows ? fs.constants.F_OK : fs.constants.X_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  };
  return {
    which(program: string): string | undefined {
      const withExt = (base: string) => [base, ...extensions.map((ext) => base + ext)];
      if (program.includes('/') || program.includes(path.sep)) {
        return withExt(path.resolve(program)).find(executable);
      }
      for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
        const hit = withExt(path.join(dir, program)).find(executable);
        if (hit !== undefined) {
          return hit;
        }
      }
      return undefined;
    },
    hasFillpoint(python: string): boolean {
      // find_spec, not import: answers in milliseconds without loading the server's dependencies.
      const probe =
        'import importlib.util as u, sys; sys.exit(u.find_spec("fillpoint.lsp") is None)';
      const result = spawnSync(python, ['-c', probe], { env, timeout: 10_000, stdio: 'ignore' });
      return result.status === 0;
    },
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values.filter((v) => v.trim() !== ''))];
}
