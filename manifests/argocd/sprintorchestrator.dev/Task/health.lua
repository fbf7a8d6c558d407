-- Argo CD health check for tasks.sprintorchestrator.dev: follows the board column the operator writes.
-- Healthy: completed. Degraded: failed, or blocked by a failed dependency.
-- Suspended: in review (waiting on a human). Progressing: ready or in progress.
local hs = { status = "Progressing", message = "Waiting for the operator" }
local status = obj.status
if status == nil then return hs end

local column = status.column or "ready"
local detail = status.error or status.reason or ""
if status.phase == "Blocked" then
  hs.status = "Degraded"
  local deps = ""
  if status.blockedBy ~= nil then deps = table.concat(status.blockedBy, ", ") end
  hs.message = "Blocked by failed dependencies: " .. deps
elseif column == "completed" then
  hs.status = "Healthy"; hs.message = "Completed"
elseif column == "failed" then
  hs.status = "Degraded"; hs.message = "Failed: " .. detail
elseif column == "review" then
  hs.status = "Suspended"; hs.message = "Waiting on review: " .. detail
elseif column == "in-progress" then
  hs.message = "In progress (attempt " .. tostring(status.attempt or 1) .. ")"
else
  hs.message = "Ready, waiting for dependencies or a free slot"
end
return hs
