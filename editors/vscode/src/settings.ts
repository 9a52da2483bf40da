// Which VS Code settings go to the server, and in what form. No `vscode` import.
//
// The server's options are the `fillpoint.*` settings that package.json contributes, minus the
// ones only the client reads. scripts/check-settings.mjs keeps package.json equal to the
// server's settings_schema(), so a new server option needs no change here.

export const SECTION = 'fillpoint';
/** Settings the client reads itself; the server would reject them as unknown options. */
export const CLIENT_ONLY_PREFIXES = ['server.', 'trace.'];

/** Just enough of package.json. */
export interface PackageJson {
  contributes?: { configuration?: { properties?: Record<string, unknown> } };
}

/** Option names the server knows (`maxItems`, not `fillpoint.maxItems`), in package.json order. */
export function serverKeys(pkg: PackageJson): string[] {
  const properties = pkg.contributes?.configuration?.properties ?? {};
  return Object.keys(properties)
    .filter((key) => key.startsWith(SECTION + '.'))
    .map((key) => key.slice(SECTION.length + 1))
    .filter((key) => !CLIENT_ONLY_PREFIXES.some((prefix) => key.startsWith(prefix)));
}

/** The server's options object (initializationOptions and the `fillpoint` section). */
export function serverSettings(
  keys: string[],
  get: (key: string) => unknown,
  expand: (path: string) => string = (p) => p,
): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of keys) {
    let value = get(key);
    if (value === undefined) {
      continue; // not contributed in this VS Code: the server keeps its default
    }
    if (key === 'modelPath') {
      // VS Code shows an unset string as "": both mean "not set" to the server.
      value = typeof value === 'string' && value.trim() !== '' ? expand(value.trim()) : null;
    }
    settings[key] = value;
  }
  return settings;
}
