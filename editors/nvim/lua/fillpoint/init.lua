-- require('fillpoint').setup(opts): start the fillpoint server for Python buffers, turn on its
-- completion list (Neovim 0.11+) and its ghost text (0.12+), and map the accept key.
local M = {}

M.defaults = {
  -- Command line of the server; nil keeps lsp/fillpoint.lua's { 'fillpoint', 'serve' }.
  cmd = nil,
  -- Server options (see lsp/fillpoint.lua), e.g. { modelPath = '~/models/release', maxItems = 30 }.
  settings = {},
  completion = {
    enabled = true,
    autotrigger = true, -- open the list at the server's trigger characters (. ( [ {)
  },
  inline = {
    enabled = true, -- ghost text; needs Neovim 0.12 (vim.lsp.inline_completion)
    accept = '<Tab>', -- accepts the ghost text; otherwise the key does what it did before
    next = '<M-]>', -- next / previous suggestion (false: no mapping)
    prev = '<M-[>',
  },
}

local function notify(message, level)
  vim.notify('[fillpoint] ' .. message, level or vim.log.levels.ERROR)
end

--- Buffer-local keys of an attached buffer.
local function map_keys(bufnr, inline)
  if inline.accept then
    vim.keymap.set('i', inline.accept, function()
      if not vim.lsp.inline_completion.get() then
        return inline.accept -- no ghost text: the key keeps its usual meaning
      end
    end, { buffer = bufnr, expr = true, desc = 'fillpoint: accept ghost text' })
  end
  for _, step in ipairs({ { inline.next, 1 }, { inline.prev, -1 } }) do
    if step[1] then
      vim.keymap.set('i', step[1], function()
        vim.lsp.inline_completion.select({ count = step[2] })
      end, { buffer = bufnr, desc = 'fillpoint: other ghost text' })
    end
  end
end

function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    notify('needs Neovim 0.11 or newer (vim.lsp.config and vim.lsp.enable)')
    return
  end
  opts = vim.tbl_deep_extend('force', M.defaults, opts or {})
  M.options = opts

  local config = {}
  if opts.cmd then
    config.cmd = opts.cmd
  end
  if next(opts.settings) then
    config.settings = { fillpoint = opts.settings }
  end
  vim.lsp.config('fillpoint', config)

  local cmd = vim.lsp.config.fillpoint and vim.lsp.config.fillpoint.cmd
  if type(cmd) == 'table' and vim.fn.executable(cmd[1]) == 0 then
    local fix = "pip install fillpoint where PATH finds it, or setup({ cmd = { '/path/to/venv/bin/fillpoint', 'serve' } })"
    notify(('server command "%s" not found. Fix: %s. See :checkhealth fillpoint'):format(cmd[1], fix))
    return
  end

  -- On 0.11 ghost text is off without a warning at every start; :checkhealth says why.
  local ghost = opts.inline.enabled and vim.lsp.inline_completion ~= nil
  vim.api.nvim_create_autocmd('LspAttach', {
    group = vim.api.nvim_create_augroup('fillpoint', { clear = true }),
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= 'fillpoint' then
        return
      end
      if opts.completion.enabled then
        vim.lsp.completion.enable(true, client.id, args.buf, { autotrigger = opts.completion.autotrigger })
      end
      if ghost then
        -- Per buffer, so that a global enable(false) (a toggle) turns it off again.
        vim.lsp.inline_completion.enable(true, { bufnr = args.buf })
        map_keys(args.buf, opts.inline)
      end
    end,
  })
  vim.lsp.enable('fillpoint')
end

--- Turn ghost text off or back on, in all buffers.
function M.toggle_inline()
  if vim.lsp.inline_completion == nil then
    notify('ghost text needs Neovim 0.12', vim.log.levels.WARN)
    return
  end
  local enable = not vim.lsp.inline_completion.is_enabled({ bufnr = 0 })
  vim.lsp.inline_completion.enable(enable)
  notify('ghost text ' .. (enable and 'on' or 'off'), vim.log.levels.INFO)
end

return M
