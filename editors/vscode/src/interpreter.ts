// The Python interpreter the Python extension has selected, if that extension is installed.

import * as vscode from 'vscode';

/** Interpreters for `python -m fillpoint.lsp`: the configured one, then the Python extension's. */
export async function pythons(
  configured: string,
  expand: (p: string) => string,
): Promise<string[]> {
  const found = configured.trim() ? [expand(configured.trim())] : [];
  const extension = vscode.extensions.getExtension('ms-python.python');
  try {
    const api = extension && (extension.isActive ? extension.exports : await extension.activate());
    const active = api?.environments?.getActiveEnvironmentPath?.(
      vscode.workspace.workspaceFolders?.[0]?.uri,
    );
    if (typeof active?.path === 'string') found.push(active.path);
  } catch {
    // The Python extension is optional and its API may change: without it PATH is searched.
  }
  return found;
}
