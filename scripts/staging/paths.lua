-- Every path a client names, confined to its root, and usernames checked before they become
-- directory names. The original joined client paths onto its roots with os.path.join, so an
-- absolute path or ".." reached anything on the machine; here (docs/services/staging.md):
--   local_path_on_storage  under SOURCE (an absolute path only if it lies inside SOURCE)
--   relative_path          under TARGET/<username>, relative only
--   create-file filename   under SOURCE, as local_path_on_storage
-- and a symlink met on the way that leads out of its root is refused (fs.confine).
local fs = require "fs"

local M = {}

-- A conservative POSIX account name (useradd's default NAME_REGEX, without the trailing "$"), or
-- a lower-case e-mail address (the username of a user signed in through the users service, see
-- init.lua): either is always one plain path component.
function M.valid_username(name)
  if #name <= 32 and name:match("^[a-z_][a-z0-9_%-]*$") then return true end
  return #name <= 254 and name:match("^[a-z0-9_][a-z0-9_%.%+%-]*@[a-z0-9][a-z0-9%.%-]*$") ~= nil
end

-- os.path.join(base, path), only to name paths in messages as the original did.
function M.joined(base, path)
  if path:sub(1, 1) == "/" then return path end
  return base .. "/" .. path
end

-- The path relative to `root` for an absolute path lexically inside it, else nil.
function M.relative_to(root, path)
  if path == root then return "." end
  if path:sub(1, #root + 1) == root .. "/" then return path:sub(#root + 2) end
  return nil
end

-- The confined absolute path of a client's `path` under `root` (a relative path, or an absolute
-- one inside `root`), or nil and the reason it was refused.
function M.under(root, path)
  local relative = path
  if path:sub(1, 1) == "/" then
    relative = M.relative_to(root, path)
    if not relative then return nil, "outside " .. root end
  end
  local confined, err = fs.confine(root, relative)
  if not confined then return nil, (err:gsub("^fs%.confine: ", "")) end
  return confined
end

-- The place for a new entry called by the client's relative `path` under `root`: its parent is
-- confined (and may not exist yet), its last part must be a plain name. The entry itself is not
-- followed: a symlink already there (an earlier local_symlink) is something that exists, not a
-- way out. Returns parent, name or nil, reason.
function M.new_entry(root, path)
  if path:sub(1, 1) == "/" then return nil, "absolute paths are not allowed" end
  local trimmed = path:gsub("/+$", "")
  local parent, name = trimmed:match("^(.*)/([^/]*)$")
  if not parent then parent, name = ".", trimmed end
  if name == "" or name == "." or name == ".." or name:find("\0", 1, true) then
    return nil, "does not name a file or directory"
  end
  if parent == "" then parent = "." end
  local confined, err = fs.confine(root, parent)
  if not confined then return nil, (err:gsub("^fs%.confine: ", "")) end
  return confined, name
end

return M
