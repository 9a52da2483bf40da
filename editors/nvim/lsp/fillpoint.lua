-- fillpoint: offline neural code completion for Python (completion list and inline ghost text).
--
-- Server options go in `settings.fillpoint` (the names of the VS Code settings, without the
-- `fillpoint.` prefix: modelPath, maxItems, inline, midToken, lineBeam, debounceMs,
-- prefetch, logLevel). They are sent at initialize as well, so the model named there is the
-- first one loaded.
--
--   vim.lsp.config('fillpoint', { settings = { fillpoint = { modelPath = '~/models/release' } } })
--   vim.lsp.enable('fillpoint')
--
-- or require('fillpoint').setup(), which also turns on completion and ghost text.

---@type vim.lsp.Config
return {
  cmd = { 'fillpoint', 'serve' },
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', 'requirements.txt', '.git' },
  -- No default `settings`: an empty table would be sent as a JSON list, not an object.
  before_init = function(params, config)
    local options = vim.tbl_get(config, 'settings', 'fillpoint')
    if options and next(options) then
      params.initializationOptions = vim.tbl_extend('force', params.initializationOptions or {}, options)
    end
  end,
}
