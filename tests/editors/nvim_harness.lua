-- Test init for a headless Neovim driven by tests/editors/test_nvim.py over --remote-expr.
-- Environment: FILLPOINT_NVIM_PLUGIN (editors/nvim), FILLPOINT_TEST_CMD (server command, JSON),
-- FILLPOINT_TEST_MODEL (release folder). Answers are JSON strings.
vim.opt.rtp:prepend(vim.env.FILLPOINT_NVIM_PLUGIN)
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'I'

local T = { loaded = false, messages = {} }
_G.FillpointTest = T

-- Model loading ends with the end of the server's work-done progress: an event, not a guess.
vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(args)
    local value = args.data.params.value
    if type(value) == 'table' and value.kind == 'end' then
      T.loaded = true
    end
  end,
})
vim.lsp.handlers['window/showMessage'] = function(_, params)
  table.insert(T.messages, params.message)
end

local settings = vim.json.decode(vim.env.FILLPOINT_TEST_SETTINGS or '{}')
settings.modelPath = vim.env.FILLPOINT_TEST_MODEL
require('fillpoint').setup({ cmd = vim.json.decode(vim.env.FILLPOINT_TEST_CMD), settings = settings })

local function client()
  return vim.lsp.get_clients({ bufnr = 0, name = 'fillpoint' })[1]
end

--- Whether the server is attached to the current buffer, initialized, and its model loaded.
function T.ready()
  local c = client()
  return vim.json.encode({
    attached = c ~= nil and c.initialized == true,
    loaded = T.loaded,
    messages = T.messages,
  })
end

--- One request to the server at a (0-based) position, as the editor would send it.
function T.request(method, line, character)
  local params = { textDocument = vim.lsp.util.make_text_document_params(0), position = { line = line, character = character } }
  if method == 'textDocument/inlineCompletion' then
    params.context = { triggerKind = 1 }
  end
  local responses = vim.lsp.buf_request_sync(0, method, params, 20000) or {}
  local response = responses[client().id] or {}
  return vim.json.encode({ result = response.result, err = response.err })
end

--- The ghost text on screen: the extmarks of vim.lsp.inline_completion.
function T.ghost()
  local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  local marks = ns and vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true }) or {}
  local out = {}
  for _, mark in ipairs(marks) do
    local text = {}
    for _, chunk in ipairs(mark[4].virt_text or {}) do
      table.insert(text, chunk[1])
    end
    table.insert(out, { row = mark[2], col = mark[3], text = table.concat(text) })
  end
  return vim.json.encode(out)
end

--- The popup menu of vim.lsp.completion.
function T.menu()
  local info = vim.fn.complete_info({ 'pum_visible', 'items' })
  local words = {}
  for _, item in ipairs(info.items or {}) do
    table.insert(words, item.word)
  end
  return vim.json.encode({ visible = info.pum_visible == 1, words = words })
end

--- Buffer line (0-based), cursor (1-based row, 0-based column) and mode.
function T.state(line)
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  return vim.json.encode({
    line = vim.api.nvim_buf_get_lines(0, line, line + 1, true)[1],
    row = row,
    col = col,
    mode = vim.api.nvim_get_mode().mode,
  })
end

--- :checkhealth fillpoint, as text.
function T.health()
  vim.cmd('checkhealth fillpoint')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  vim.cmd('bwipeout!')
  return vim.json.encode(text)
end
