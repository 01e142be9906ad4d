-- The S3 backend of the `blob` module (bindings/blob.lua): objects under s3://bucket/prefix/<store>/
-- on any S3 endpoint (AWS, Ceph RGW, MinIO, s3rver), path- or virtual-host-style, every request
-- signed with AWS Signature V4 (aws_signature.lua) and sent with `http` — the worker's curl multi,
-- so a task waits and no reactor thread ever does.
--
-- Writes are never visible half-done: a writer buffers up to PART_BYTES (8 MiB) and sends small
-- objects in one PUT; larger ones go as a multipart upload completed only by commit() and aborted
-- on any failure. An upload its process did not live to complete or abort (kill -9) stays an
-- invisible incomplete upload until abort_stale_uploads (or a bucket lifecycle rule) removes it.
-- Memory per writer: one PART_BYTES `buffer` (C++ memory), which http sends from without a copy;
-- the writer's task waits while a part is in flight, so the part being filled is that one.
--
-- Downloads are relayed with the client's Range and conditional headers passed through to S3
-- (http's stream mode: ~256 KiB buffered, paced by the client), or answered with a redirect to a
-- presigned URL (storage.blob_downloads = "redirect").
--
-- Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY at each signature, the region
-- from AWS_REGION (default us-east-1); none of them is logged or put in an answer.
local buffer = require "buffer"
local crypto = require "crypto"
local driver = require "blob_driver"
local http = require "http"
local log = require "log"
local signature = require "aws_signature"

local M = {}
M.__index = M

M.PART_BYTES = 8 * 1024 * 1024
local TIMEOUT = 300 -- seconds for one request whose body is in memory (a part: 8 MiB)
local RELAY_TIMEOUT = 24 * 3600 -- a relayed download lasts as long as its client reads
local IDLE_TIMEOUT = 60

-- The parts of s3://bucket/prefix.
local function parse_url(url)
  local bucket, prefix = url:match("^s3://([^/]+)/?(.*)$")
  prefix = prefix:gsub("/+$", "")
  return bucket, prefix
end

-- scheme, authority (host[:port]) and base path of the endpoint URL.
local function parse_endpoint(endpoint)
  local scheme, authority, path = endpoint:match("^(https?)://([^/]+)(.*)$")
  return scheme, authority, (path:gsub("/+$", ""))
end

-- settings: blob_driver.settings; name: the store's name (a key prefix of its own).
function M.open(settings, name)
  local bucket, prefix = parse_url(settings.url)
  local region = os.getenv("AWS_REGION") or os.getenv("AWS_DEFAULT_REGION") or "us-east-1"
  local endpoint = settings.endpoint ~= "" and settings.endpoint
    or ("https://s3." .. region .. ".amazonaws.com")
  local scheme, authority, base = parse_endpoint(endpoint)
  local self = setmetatable({
    bucket = bucket,
    region = region,
    key_prefix = (prefix ~= "" and prefix .. "/" or "") .. name .. "/",
    downloads = settings.downloads,
    redirect_seconds = settings.redirect_seconds,
  }, M)
  if settings.addressing == "virtual" then
    self.host, self.origin, self.base_path = bucket .. "." .. authority, scheme .. "://" .. bucket
      .. "." .. authority, base
  else
    self.host, self.origin, self.base_path = authority, scheme .. "://" .. authority,
      base .. "/" .. bucket
  end
  return self
end

local function credentials()
  local access_key, secret_key = os.getenv("AWS_ACCESS_KEY_ID"), os.getenv("AWS_SECRET_ACCESS_KEY")
  if not access_key or access_key == "" or not secret_key or secret_key == "" then
    return nil, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set for s3:// blob storage"
  end
  return access_key, secret_key
end

-- The signable description of a request on `key` ("" for the bucket itself).
function M:describe(method, key, query, headers, payload_hash)
  local access_key, secret_key = credentials()
  if not access_key then return nil, secret_key end
  local path = self.base_path .. "/" .. (key and signature.encode_path(self.key_prefix .. key) or "")
  return {
    method = method, host = self.host, path = path, query = query or {}, headers = headers or {},
    payload_hash = payload_hash or signature.UNSIGNED_PAYLOAD, region = self.region,
    service = "s3", access_key = access_key, secret_key = secret_key, time = os.time(),
  }
end

local function query_string(query)
  local items = {}
  for name, value in pairs(query) do
    items[#items + 1] = signature.encode(name) .. (value == "" and "" or "=" .. signature.encode(value))
  end
  table.sort(items)
  return #items > 0 and "?" .. table.concat(items, "&") or ""
end

local function xml_text(text)
  return (text:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&apos;", "'")
    :gsub("&#(%d+);", function(code) return string.char(tonumber(code)) end):gsub("&amp;", "&"))
end

local function xml_escape(text)
  return (text:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

-- "blob.<what>: S3 answered 403 AccessDenied: ..." from an S3 error answer.
local function s3_error(what, response)
  local body = type(response.body) == "string" and response.body or ""
  local code = body:match("<Code>(.-)</Code>")
  local message = body:match("<Message>(.-)</Message>")
  return string.format("blob.%s: S3 answered %d%s%s", what, response.status,
    code and " " .. xml_text(code) or "", message and ": " .. xml_text(message) or "")
end

-- Sends one signed request; returns the response or nil, message. opts: query, headers, body,
-- stream, what (the operation, for messages).
function M:request(method, key, opts)
  local query = opts.query or {}
  local description, problem = self:describe(method, key, query, opts.headers)
  if not description then return nil, "blob." .. opts.what .. ": " .. problem end
  local url = self.origin .. description.path .. query_string(query)
  local response, err = http.request(method, url, {
    headers = signature.sign(description), body = opts.body, stream = opts.stream,
    timeout = opts.stream and RELAY_TIMEOUT or TIMEOUT, idle_timeout = IDLE_TIMEOUT,
    retries = opts.body == nil and not opts.stream and 2 or 0,
  })
  if not response then return nil, "blob." .. opts.what .. ": " .. err end
  return response
end

-- ---------------------------------------------------------------------------------------------
-- Writing

local Writer = {}
Writer.__index = Writer

function M:writer(key, opts)
  return setmetatable({
    store = self, key = key, parts = {}, size = 0, part = buffer.new(M.PART_BYTES),
    hash = opts and opts.hash == "xxh128" and crypto.xxh128_stream() or nil,
    state = "open",
  }, Writer)
end

function Writer:fail(message)
  self:abort()
  return nil, message
end

-- Sends the full part buffer as the next part (starting the multipart upload first), then empties
-- it. http sends from the buffer itself: the part exists once, and only once, in memory.
function Writer:send_part()
  local store = self.store
  if not self.upload_id then
    local response, err = store:request("POST", self.key, { query = { uploads = "" }, body = "",
      what = "writer" })
    if not response then return nil, err end
    if response.status ~= 200 then return nil, s3_error("writer", response) end
    self.upload_id = response.body:match("<UploadId>(.-)</UploadId>")
    if not self.upload_id then return nil, "blob.writer: S3 sent no UploadId" end
    self.upload_id = xml_text(self.upload_id)
  end
  local number = #self.parts + 1
  local response, err = store:request("PUT", self.key, { body = self.part, what = "write",
    query = { partNumber = tostring(number), uploadId = self.upload_id } })
  if not response then return nil, err end
  if response.status ~= 200 then return nil, s3_error("write", response) end
  self.parts[number] = response.headers.etag
  self.part:clear()
  return true
end

-- w:write(chunk) → true | nil, message (the upload is aborted then). Every part but the last is
-- exactly PART_BYTES: a chunk that fills the buffer is split, without making its pieces.
function Writer:write(chunk)
  if self.state ~= "open" then error("blob writer: write after commit or abort", 2) end
  if type(chunk) ~= "string" then error("blob writer: chunk must be a string", 2) end
  self.size = self.size + #chunk
  if self.hash then self.hash:update(chunk) end
  local from = 1
  while #chunk - from + 1 >= M.PART_BYTES - #self.part do
    local upto = from + M.PART_BYTES - #self.part - 1
    self.part:append(chunk, from, upto)
    from = upto + 1
    local ok, err = self:send_part()
    if not ok then return self:fail(err) end
  end
  self.part:append(chunk, from)
  return true
end

function Writer:bytes() return self.size end

-- w:commit() → size, hex_digest | nil, message. The object appears now, whole, or not at all.
function Writer:commit()
  if self.state ~= "open" then error("blob writer: commit after commit or abort", 2) end
  local store = self.store
  if not self.upload_id then
    local response, err = store:request("PUT", self.key, { body = self.part, what = "commit" })
    if not response then return self:fail(err) end
    if response.status ~= 200 then return self:fail(s3_error("commit", response)) end
  else
    if #self.part > 0 then
      local ok, err = self:send_part()
      if not ok then return self:fail(err) end
    end
    local parts = { "<CompleteMultipartUpload>" }
    for number, etag in ipairs(self.parts) do
      parts[#parts + 1] = string.format("<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
        number, xml_escape(etag))
    end
    parts[#parts + 1] = "</CompleteMultipartUpload>"
    local response, err = store:request("POST", self.key, { query = { uploadId = self.upload_id },
      body = table.concat(parts), headers = { ["Content-Type"] = "application/xml" },
      what = "commit" })
    if not response then return self:fail(err) end
    -- S3 may answer 200 and still have failed: the error is then in the body.
    if response.status ~= 200 or response.body:find("<Error>", 1, true) then
      return self:fail(s3_error("commit", response))
    end
  end
  self.state = "committed"
  self.part:clear()
  return self.size, self.hash and self.hash:hexfinal() or nil
end

-- w:abort() → true (false when already committed). An upload in progress is aborted on S3.
function Writer:abort()
  if self.state == "committed" then return false end
  if self.state == "aborted" then return true end
  self.state = "aborted"
  self.part:clear()
  if self.upload_id then
    self.store:request("DELETE", self.key, { query = { uploadId = self.upload_id }, what = "abort" })
  end
  return true
end

-- ---------------------------------------------------------------------------------------------
-- Objects

function M:put(key, data)
  local response, err = self:request("PUT", key, { body = data, what = "put" })
  if not response then return nil, err end
  if response.status ~= 200 then return nil, s3_error("put", response) end
  return #data
end

function M:read(key)
  local response, err = self:request("GET", key, { what = "read" })
  if not response then return nil, err end
  if response.status == 404 then return nil, "not found" end
  if response.status ~= 200 then return nil, s3_error("read", response) end
  return response.body
end

function M:delete(key)
  local response, err = self:request("DELETE", key, { what = "delete" })
  if not response then return nil, err end
  if response.status ~= 204 and response.status ~= 200 and response.status ~= 404 then
    return nil, s3_error("delete", response)
  end
  return true
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
  Oct = 10, Nov = 11, Dec = 12 }

-- Seconds since the epoch of a UTC civil date (Howard Hinnant's days_from_civil).
local function epoch(year, month, day, hour, minute, second)
  year = month <= 2 and year - 1 or year
  local era = math.floor(year / 400)
  local year_of_era = year - era * 400
  local day_of_year = math.floor((153 * (month + (month > 2 and -3 or 9)) + 2) / 5) + day - 1
  local day_of_era = year_of_era * 365 + math.floor(year_of_era / 4) - math.floor(year_of_era / 100)
    + day_of_year
  local days = era * 146097 + day_of_era - 719468
  return days * 86400 + hour * 3600 + minute * 60 + second
end

-- "Tue, 01 Dec 2026 15:24:47 GMT" (HTTP) or "2026-12-01T15:24:47.000Z" (S3's XML).
local function parse_time(text)
  if not text then return nil end
  local day, month, year, h, m, s = text:match("(%d+) (%a+) (%d+) (%d+):(%d+):(%d+)")
  if day and MONTHS[month] then
    return epoch(tonumber(year), MONTHS[month], tonumber(day), tonumber(h), tonumber(m), tonumber(s))
  end
  local y, mo, d, hh, mm, ss = text:match("(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if y then return epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss)) end
end

function M:stat(key)
  local response, err = self:request("HEAD", key, { what = "stat" })
  if not response then return nil, err end
  if response.status == 404 then return nil end
  if response.status ~= 200 then return nil, s3_error("stat", response) end
  return { size = tonumber(response.headers["content-length"]) or 0,
           mtime = parse_time(response.headers["last-modified"]) }
end

-- One page of { {key =, size =, mtime =}, ... } in key order, and the continuation token of the
-- next page (nil when S3 says the listing is complete: no request for an empty last page).
function M:list(prefix, after, limit, cursor)
  local query = { ["list-type"] = "2", prefix = self.key_prefix .. prefix,
                  ["max-keys"] = tostring(limit) }
  if cursor then
    query["continuation-token"] = cursor
  elseif after then
    query["start-after"] = self.key_prefix .. after
  end
  local response, err = self:request("GET", nil, { query = query, what = "list" })
  if not response then return nil, err end
  if response.status ~= 200 then return nil, s3_error("list", response) end
  local body = response.body
  local entries, skip = {}, #self.key_prefix
  for contents in body:gmatch("<Contents>(.-)</Contents>") do
    local key = xml_text(contents:match("<Key>(.-)</Key>") or "")
    entries[#entries + 1] = { key = key:sub(skip + 1),
      size = tonumber(contents:match("<Size>(%d+)</Size>")) or 0,
      mtime = parse_time(contents:match("<LastModified>(.-)</LastModified>")) }
  end
  if body:match("<IsTruncated>%s*(%a+)%s*</IsTruncated>") ~= "true" then return entries end
  local token = body:match("<NextContinuationToken>(.-)</NextContinuationToken>")
  if not token or token == "" then
    return nil, "blob.list: S3 answered a truncated listing without a NextContinuationToken"
  end
  return entries, xml_text(token)
end

-- Endpoints (origin and bucket) that answered ListMultipartUploads with 501 (s3rver): not asked
-- again by this Lua state, so the periodic jobs that call abort_stale_uploads warn once, not at
-- every run.
local without_upload_listing = {}

-- Aborts the incomplete multipart uploads of this store started before `before` (a process that
-- died mid-upload); returns how many (0 where S3 cannot list them).
function M:abort_stale_uploads(before)
  local endpoint = self.origin .. self.base_path
  if without_upload_listing[endpoint] then return 0 end
  local response, err = self:request("GET", nil, { what = "abort_stale_uploads",
    query = { uploads = "", prefix = self.key_prefix } })
  if not response then return nil, err end
  if response.status == 501 then
    without_upload_listing[endpoint] = true
    log.warn("blob: this S3 does not implement ListMultipartUploads: incomplete uploads of dead "
      .. "processes are not aborted (use a bucket lifecycle rule AbortIncompleteMultipartUpload)",
      { error = s3_error("abort_stale_uploads", response) })
    return 0
  end
  if response.status ~= 200 then return nil, s3_error("abort_stale_uploads", response) end
  local aborted = 0
  for upload in response.body:gmatch("<Upload>(.-)</Upload>") do
    local key = xml_text(upload:match("<Key>(.-)</Key>") or "")
    local id = xml_text(upload:match("<UploadId>(.-)</UploadId>") or "")
    local started = parse_time(upload:match("<Initiated>(.-)</Initiated>"))
    if started and started < before and key:sub(1, #self.key_prefix) == self.key_prefix then
      local deleted = self:request("DELETE", key:sub(#self.key_prefix + 1),
        { query = { uploadId = id }, what = "abort_stale_uploads" })
      if deleted and deleted.status == 204 then aborted = aborted + 1 end
    end
  end
  return aborted
end

-- ---------------------------------------------------------------------------------------------
-- Downloads

local PASSED_THROUGH = { "range", "if-range", "if-none-match", "if-modified-since", "if-match",
  "if-unmodified-since" }
local RELAYED = { "etag", "last-modified", "content-range", "accept-ranges" }

local function response_overrides(opts, content_type)
  local query = { ["response-content-type"] = content_type }
  if opts.download_name then
    query["response-content-disposition"] = driver.content_disposition(opts.download_name)
  end
  return query
end

function M:serve(req, res, key, opts, content_type)
  local method = req.method == "HEAD" and "HEAD" or "GET"
  if self.downloads == "redirect" then
    local description, problem = self:describe(method, key, response_overrides(opts, content_type))
    if not description then return nil, "blob.serve: " .. problem end
    local query = signature.presign(description, self.redirect_seconds)
    res:send(307, "", { Location = self.origin .. description.path .. "?" .. query })
    return true
  end
  local headers = {}
  for _, name in ipairs(PASSED_THROUGH) do headers[name] = req:header(name) end
  local response, err = self:request(method, key, { headers = headers, stream = true,
    what = "serve" })
  if not response then return nil, err end
  local status = response.status
  if status == 404 then
    response.body:close()
    return nil, "not found"
  end
  if status ~= 200 and status ~= 206 and status ~= 304 and status ~= 412 and status ~= 416 then
    local message = s3_error("serve", { status = status, body = "" })
    response.body:close()
    return nil, message
  end
  local answer = { ["Content-Type"] = content_type }
  for _, name in ipairs(RELAYED) do answer[name] = response.headers[name] end
  if opts.download_name then
    answer["Content-Disposition"] = driver.content_disposition(opts.download_name)
  end
  for name, value in pairs(opts.headers or {}) do answer[name] = value end
  if status ~= 200 and status ~= 206 then -- no bytes to relay (S3's error text is not the client's)
    response.body:close()
    res:send(status, "", answer)
    return true
  end
  res:start(status, answer, { length = tonumber(response.headers["content-length"]) })
  while true do
    local chunk = response.body:read()
    if not chunk or not res:write(chunk) then break end
  end
  response.body:close()
  res:finish()
  return true
end

return M
