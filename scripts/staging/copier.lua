-- local_copy: a file or a whole tree from the source storage into a user's area, one entry at a
-- time (each fs call is one short job on the thread pool, so a huge tree never holds a pool
-- thread or the reactor for long), then made read-only (files 0400, directories 0500) and, when
-- the server runs as root, given to the user.
--
-- Order, so that no half-done copy is ever mistaken for staged data:
--   1. scan the source: list every entry, refuse symlinks that leave SOURCE, symlinks to
--      directories and special files, before anything is written;
--   2. copy into a hidden ".staging-<record id>" next to the target, modes and owner set as it goes;
--   3. rename it to the target. On any failure the hidden copy is removed.
-- A symlink inside the tree that stays inside SOURCE and names a file is copied as that file's
-- content, as the original's shutil.copytree did; nothing outside SOURCE is ever read.
local fs = require "fs"
local jobs = require "jobs"

local M = {}

-- A refusal or failure: status and the detail the client gets.
local function failure(status, detail) return { status = status, detail = detail } end

local function relative_to(root, path)
  if path == root then return "." end
  if path:sub(1, #root + 1) == root .. "/" then return path:sub(#root + 2) end
  return nil
end

-- Whether the symlink at `path` (inside the real source root) leads somewhere inside it.
local function symlink_stays_inside(source_root, path)
  local relative = relative_to(source_root, path)
  return relative ~= nil and fs.confine(source_root, relative) ~= nil
end

-- Every entry of the source, parents before children: {relative, kind, path, size}.
local function scan(source_root, top, max_entries)
  local status = fs.stat(top, { follow = true })
  if not status then return nil, failure(400, "Source path does not exist: " .. top) end
  if status.type == "file" then
    return { { relative = "", kind = "file", path = top, size = status.size } }, status.size
  end
  if status.type ~= "directory" then return nil, failure(500, "Unexpected error: Invalid path: " .. top) end
  local entries, total = { { relative = "", kind = "directory", path = top } }, 0
  local index = 1
  while index <= #entries do
    local directory = entries[index]
    if directory.kind == "directory" then
      local names, err = fs.list(directory.path)
      if not names then return nil, failure(500, "Unexpected error: " .. err) end
      for _, name in ipairs(names) do
        local path = directory.path .. "/" .. name
        local relative = directory.relative == "" and name or directory.relative .. "/" .. name
        local entry = fs.stat(path)
        if entry and entry.type == "symlink" then
          if not symlink_stays_inside(source_root, path) then
            return nil, failure(400, "Symlink leads outside the source storage: " .. path)
          end
          entry = fs.stat(path, { follow = true })
          if entry and entry.type == "directory" then
            return nil, failure(400, "Symlink to a directory inside the source tree: " .. path)
          end
        end
        if not entry then return nil, failure(500, "Unexpected error: cannot read " .. path) end
        if entry.type ~= "file" and entry.type ~= "directory" then
          return nil, failure(400, "Not a regular file or directory: " .. path)
        end
        if #entries >= max_entries then
          return nil, failure(400, "Too many entries in " .. top .. " (at most " .. max_entries .. ")")
        end
        entries[#entries + 1] = { relative = relative, kind = entry.type, path = path, size = entry.size }
        if entry.type == "file" then total = total + entry.size end
      end
    end
    index = index + 1
  end
  return entries, total
end

-- Makes `path` read-only for its owner and hands it to `owner` ({uid, gid}) when given.
local function seal(path, mode, owner)
  if owner then assert(fs.chown(path, owner.uid, owner.gid)) end
  assert(fs.chmod(path, mode))
end

-- Progress of one copy: bytes of the files already copied, plus what the file being copied has
-- reached (its size grows while copy_file_range runs on the pool).
local function watch(job, progress, total)
  job.records:update(job.record.id, { bytes_total = total, bytes_done = 0 })
  return jobs.every(job.settings.progress_interval, function(premature)
    if premature then return end
    local current = progress.current and fs.stat(progress.current)
    local done = progress.done + (current and current.size or 0)
    job.records:update(job.record.id, { bytes_done = math.min(done, total) })
  end)
end

local function copy_entries(entries, staging, owner, progress)
  for _, entry in ipairs(entries) do
    local destination = entry.relative == "" and staging or staging .. "/" .. entry.relative
    if entry.kind == "directory" then
      assert(fs.mkdir(destination, "0700"))
    else
      progress.current = destination
      assert(fs.copy(entry.path, destination))
      progress.current = nil
      progress.done = progress.done + entry.size
      seal(destination, "0400", owner)
    end
  end
  for i = #entries, 1, -1 do  -- children before their parents: a sealed parent stays sealed
    local entry = entries[i]
    if entry.kind == "directory" then
      seal(entry.relative == "" and staging or staging .. "/" .. entry.relative, "0500", owner)
    end
  end
end

-- job: {settings, records, record, source_root (real SOURCE), source (confined), parent, name,
-- owner (nil or {uid, gid})}. Returns bytes or nil, {status, detail}.
function M.copy(job)
  local entries, total = scan(job.source_root, job.source, job.settings.max_tree_entries)
  if not entries then return nil, total end
  local staging = job.parent .. "/.staging-" .. job.record.id
  local target = job.parent .. "/" .. job.name
  local progress = { done = 0 }
  local watcher = total >= job.settings.progress_threshold and watch(job, progress, total) or nil
  local ok, err = pcall(function()
    copy_entries(entries, staging, job.owner, progress)
    assert(fs.rename(staging, target))
  end)
  if watcher then watcher:cancel() end
  if not ok then
    fs.remove(staging, { recursive = true })
    return nil, failure(500, "Unexpected error: " .. tostring(err):gsub("^fs%.%a+: ", ""))
  end
  if watcher then job.records:update(job.record.id, { bytes_done = total }) end
  return total
end

return M
