-- Argo CD health check for sprints.sprintorchestrator.dev (status is written by the operator).
-- Healthy: Completed. Degraded: an invalid spec, Failed, RolledBack, or Partial (some tasks failed).
-- Suspended: spec.suspend, or nothing can move until a human reviews a task.
-- Progressing: everything else (not yet observed, initializing, running, integrating).
local hs = { status = "Progressing", message = "Waiting for the operator" }
local status = obj.status
local spec = obj.spec or {}

local function condition(kind)
  if status == nil or status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then return c end
  end
  return nil
end

local function count(name)
  local columns = (status and status.columns) or {}
  return tonumber(columns[name]) or 0
end

if status == nil then
  if spec.suspend then hs.status = "Suspended"; hs.message = "Suspended before it started" end
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "False" and ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = ready.message or "The sprint spec is invalid"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase or "Pending"
local progress = status.progress or ""
if phase == "Completed" then
  hs.status = "Healthy"; hs.message = "Completed " .. progress
elseif phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"; hs.message = phase .. ": " .. (status.message or progress)
elseif phase == "Partial" then
  hs.status = "Degraded"
  hs.message = "Partial: " .. tostring(count("failed")) .. " task(s) failed, " .. progress .. " completed"
elseif spec.suspend then
  hs.status = "Suspended"; hs.message = "Suspended (spec.suspend) at " .. progress
elseif count("review") > 0 and count("inProgress") == 0 and count("ready") == 0 then
  hs.status = "Suspended"
  hs.message = "Waiting on review: " .. tostring(count("review")) .. " task(s) need a human"
else
  hs.message = phase .. " " .. progress
end
return hs
