-- local_copy: a file or a whole tree from the source storage into a user's area, entry by entry
-- (each fs call is one short job on the thread pool, so a huge tree never holds a pool thread or
-- the reactor for long; COPY_LANES files are copied side by side), then made read-only (files
-- 0400, directories 0500) and, when the server runs as root, given to the user.
--
-- Order, so that no half-done copy is ever mistaken for staged data:
--   1. scan the source: list every entry, refuse symlinks that leave SOURCE, symlinks to
--      directories and special files, before anything is written;
--   2. copy into a hidden ".staging-<record id>" next to the target, modes and owner set as it goes;
--   3. rename it to the target. On any failure the hidden copy is removed.
-- A symlink inside the tree that stays inside SOURCE and names a file is copied as that file's
-- content, as the original's shutil.copytree did; nothing outside SOURCE is ever read.
local depot = require "depot"
local fs = require "fs"
local jobs = require "jobs"
local paths = require "staging.paths"

local M = {}

-- A refusal or failure: status and the detail the client gets.
local function failure(status, detail) return { status = status, detail = detail } end

-- Whether the symlink at `path` (inside the real source root) leads somewhere inside it.
local function symlink_stays_inside(source_root, path)
  local relative = paths.relative_to(source_root, path)
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

-- Progress of one copy: bytes of the files already copied, plus what the files being copied have
-- reached (their size grows while copy_file_range runs on the pool).
local function watch(job, progress, total)
  job.records:update(job.record.id, { bytes_total = total, bytes_done = 0 })
  return jobs.every(job.settings.progress_interval, function(premature)
    if premature then return end
    local done = progress.done
    for path in pairs(progress.current) do
      local current = fs.stat(path)
      done = done + (current and current.size or 0)
    end
    job.records:update(job.record.id, { bytes_done = math.min(done, total) })
  end)
end

local function destination_of(staging, entry)
  return entry.relative == "" and staging or staging .. "/" .. entry.relative
end

-- Runs `lane()` as `count` background tasks of this worker at once and waits for them all: the
-- pool then has several small file operations to run side by side instead of one at a time.
-- Raises the first error a lane raised; the other lanes see `state.failed` and stop early.
local function in_lanes(count, name, lane)
  local remaining, first_error, state = count, nil, { failed = false }
  for _ = 1, count do
    jobs.after(0, function(premature)
      local ok, err = true, nil
      if premature then
        ok, err = false, "the server is stopping"
      else
        ok, err = pcall(lane, state)
      end
      if not ok and first_error == nil then first_error, state.failed = err, true end
      remaining = remaining - 1
      if remaining == 0 then depot.notify_local(name) end
    end)
  end
  while remaining > 0 do depot.wait(name, 1) end
  if first_error ~= nil then error(first_error, 0) end
end

-- Directories first (parents before children), then the files in lanes, then the directories
-- sealed children first, so that a sealed parent never has to be opened again.
local function copy_entries(job, entries, staging, progress)
  local files = {}
  for _, entry in ipairs(entries) do
    if entry.kind == "directory" then
      assert(fs.mkdir(destination_of(staging, entry), "0700"))
    else
      files[#files + 1] = entry
    end
  end
  local next_file = 0
  in_lanes(math.min(job.settings.copy_lanes, math.max(#files, 1)), "staging:copy:" .. job.record.id, function(state)
    while next_file < #files and not state.failed do
      next_file = next_file + 1
      local entry = files[next_file]
      local destination = destination_of(staging, entry)
      progress.current[destination] = true
      assert(fs.copy(entry.path, destination))
      progress.current[destination] = nil
      progress.done = progress.done + entry.size
      seal(destination, "0400", job.owner)
    end
  end)
  for i = #entries, 1, -1 do
    if entries[i].kind == "directory" then seal(destination_of(staging, entries[i]), "0500", job.owner) end
  end
end

-- job: {settings, records, record, source_root (real SOURCE), source (confined), parent, name,
-- owner (nil or {uid, gid})}. Returns bytes or nil, {status, detail}.
function M.copy(job)
  local entries, total = scan(job.source_root, job.source, job.settings.max_tree_entries)
  if not entries then return nil, total end
  local staging = job.parent .. "/.staging-" .. job.record.id
  local target = job.parent .. "/" .. job.name
  local progress = { done = 0, current = {} }
  local watcher = total >= job.settings.progress_threshold and watch(job, progress, total) or nil
  local ok, err = pcall(function()
    copy_entries(job, entries, staging, progress)
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
