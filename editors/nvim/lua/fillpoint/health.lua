-- :checkhealth fillpoint
local M = {}

local health = vim.health

--- The server's command line with `serve` (and what follows) replaced by `--version`.
local function version_cmd(cmd)
  local out = {}
  for _, part in ipairs(cmd) do
    if part == 'serve' then
      break
    end
    table.insert(out, part)
  end
  table.insert(out, '--version')
  return out
end

local function check_neovim()
  health.start('Neovim')
  if vim.fn.has('nvim-0.11') == 0 then
    health.error('Neovim 0.11 or newer is needed (vim.lsp.config, vim.lsp.enable)')
  elseif vim.lsp.inline_completion == nil then
    health.warn('ghost text needs Neovim 0.12 (vim.lsp.inline_completion); the completion list works')
  else
    health.ok('Neovim ' .. tostring(vim.version()) .. ': completion list and ghost text')
  end
  if require('fillpoint').options then
    health.ok('require("fillpoint").setup() was called')
  else
    health.info('setup() was not called: completion and ghost text are only on if you enabled them')
  end
end

local function check_server(config)
  health.start('fillpoint server')
  local cmd = config.cmd
  if type(cmd) ~= 'table' or #cmd == 0 then
    health.info('cmd is a function; it cannot be checked here')
    return
  end
  local program = vim.fn.exepath(cmd[1])
  if program == '' then
    health.error(('"%s" not found'):format(cmd[1]), {
      'pip install fillpoint in an environment whose bin/ is on PATH',
      "or require('fillpoint').setup({ cmd = { '/path/to/venv/bin/fillpoint', 'serve' } })",
    })
    return
  end
  health.ok('command: ' .. table.concat(cmd, ' ') .. ' (' .. program .. ')')
  local ok, result = pcall(function()
    return vim.system(version_cmd(cmd), { text = true }):wait(15000)
  end)
  if ok and result.code == 0 then
    health.ok('version: ' .. vim.trim(result.stdout ~= '' and result.stdout or result.stderr))
  else
    local why = ok and vim.trim((result.stderr or '') .. ' exit ' .. tostring(result.code)) or tostring(result)
    health.error('`' .. table.concat(version_cmd(cmd), ' ') .. '` failed: ' .. why)
  end
end

local function check_model(config)
  health.start('model')
  local configured = vim.tbl_get(config, 'settings', 'fillpoint', 'modelPath')
  local from_env = vim.env.FILLPOINT_MODEL
  local folder, where
  if type(configured) == 'string' and configured ~= '' then
    folder, where = configured, 'settings.fillpoint.modelPath'
  elseif from_env and from_env ~= '' then
    folder, where = from_env, '$FILLPOINT_MODEL'
  else
    health.info('modelPath is not set and $FILLPOINT_MODEL is empty: the server loads the model bundled with fillpoint')
    return
  end
  local onnx = vim.fs.joinpath(vim.fs.normalize(folder), 'model.onnx')
  if vim.uv.fs_stat(onnx) then
    health.ok(('%s: %s'):format(where, folder))
  else
    health.error(('%s: %s has no model.onnx'):format(where, folder), 'point it at a released model folder')
  end
end

local function check_clients()
  health.start('running servers')
  local clients = vim.lsp.get_clients({ name = 'fillpoint' })
  if #clients == 0 then
    health.info('none (one starts when a Python buffer opens)')
  end
  for _, client in ipairs(clients) do
    local buffers = vim.tbl_keys(client.attached_buffers)
    table.sort(buffers)
    local inline = client:supports_method('textDocument/inlineCompletion') and 'yes' or 'no'
    health.ok(
      ('client %d: buffers %s, encoding %s, inline completion %s'):format(
        client.id,
        table.concat(buffers, ', '),
        client.offset_encoding,
        inline
      )
    )
  end
end

function M.check()
  local config = vim.lsp.config.fillpoint or {}
  check_neovim()
  check_server(config)
  check_model(config)
  check_clients()
end

return M
