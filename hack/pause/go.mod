// The Pod sandbox ("pause") program of the local cluster's nodes: no registry is reachable, so the
// sandbox image is built here from this module.
module sprintorchestrator.dev/hack/pause

go 1.24.0
