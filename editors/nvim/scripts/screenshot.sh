#!/usr/bin/env bash
# Terminal captures of the plugin at work (completion menu, ghost text, accepted text), printed
# to stdout. Needs tmux, nvim >= 0.12 and fillpoint; the model comes from $FILLPOINT_MODEL.
#
#   FILLPOINT_MODEL=/path/to/release editors/nvim/scripts/screenshot.sh > editors/nvim/screenshot.txt
set -euo pipefail
PLUGIN="$(cd "$(dirname "$0")/.." && pwd)"
REPO="$(cd "$PLUGIN/../.." && pwd)"
NVIM="${NVIM:-$REPO/.venv/bin/nvim}"
SERVER="${FILLPOINT_SERVER:-$REPO/.venv/bin/fillpoint}"
MODEL="${FILLPOINT_MODEL:?set FILLPOINT_MODEL to a release folder}"
WORK="$(mktemp -d /tmp/fpshot.XXXXXX)"
SESSION="fillpoint-screenshot-$$"
trap 'tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/paths.py" <<'PY'
import os


def join_all(parts):
    """Join path parts with the platform's separator."""
    return os.path.join(*parts)


def main(paths):
    for path in paths:
        if os.path.exists(path):
            print(path)
    joined = join_
PY
cat > "$WORK/init.lua" <<LUA
vim.opt.rtp:prepend('$PLUGIN')
vim.o.number = true
vim.o.swapfile = false
vim.api.nvim_create_autocmd('LspProgress', { callback = function(args)
  if args.data.params.value.kind == 'end' then vim.g.fillpoint_loaded = 1 end
end })
require('fillpoint').setup({ cmd = { '$SERVER', 'serve' }, settings = { modelPath = '$MODEL' } })
LUA

remote() { "$NVIM" --server "$WORK/sock" "$@"; }
capture() { echo "---- $1"; tmux capture-pane -t "$SESSION" -p | sed -e 's/[[:space:]]*$//' -e '/^~$/d'; echo; }

tmux new-session -d -s "$SESSION" -x 90 -y 22 \
  "cd '$WORK' && XDG_STATE_HOME='$WORK' '$NVIM' --clean -u init.lua --listen '$WORK/sock' paths.py"
for _ in $(seq 100); do [ -S "$WORK/sock" ] && break; sleep 0.1; done
for _ in $(seq 300); do [ "$(remote --remote-expr 'get(g:, "fillpoint_loaded", 0)')" = 1 ] && break; sleep 0.2; done

ABOUT="$(python3 - "$MODEL/manifest.json" 2>/dev/null <<'PY' || basename "$MODEL"
import json, sys
m = json.load(open(sys.argv[1]))
print(f"{m['name']}, {m['parameters']:,} parameters, {m['trained_steps']} training steps")
PY
)"
echo "fillpoint in Neovim $("$NVIM" --version | head -1 | cut -d' ' -f2); model: $ABOUT"
echo "(tmux capture-pane: ghost text is dimmed on screen, plain here)"
echo
tmux send-keys -t "$SESSION" G o
tmux send-keys -t "$SESSION" -l 'name = os.path.'
sleep 2.5
capture "typed \`name = os.path.\`: the completion menu opens at the trigger character"
tmux send-keys -t "$SESSION" C-e Escape u
sleep 0.5
tmux send-keys -t "$SESSION" G A
sleep 2.5
capture "cursor after \`joined = join_\` in insert mode: ghost text $(remote --remote-expr 'luaeval("vim.json.encode(vim.tbl_map(function(m) return m[4].virt_text[1][1] end, vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_get_namespaces()[\"nvim.lsp.inline_completion\"] or -1, 0, -1, {details = true})))")')"
tmux send-keys -t "$SESSION" Tab Escape
sleep 1
# Leaving insert mode does not stop a pending ghost-text request in 0.12-dev: hide it.
remote --remote-expr 'luaeval("vim.lsp.inline_completion.enable(false)")' > /dev/null
sleep 0.3
capture "<Tab> accepted the ghost text (then <Esc>)"
remote --remote-send '<C-\><C-N>:qa!<CR>' || true
