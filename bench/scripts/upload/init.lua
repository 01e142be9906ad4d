-- Bench service for upload_rss.sh: streams a request body to the file named by the service's
-- config.target, chunk by chunk, so Depot's memory must stay flat whatever the body size.
local service = ...

service:post("/upload", function(req)
  local file = assert(io.open(service.config.target, "wb"))
  local total = 0
  while true do
    local chunk, err = req:read()
    if err then file:close(); error(err) end
    if not chunk then break end
    file:write(chunk); total = total + #chunk
  end
  file:close()
  return { bytes = total }
end)
