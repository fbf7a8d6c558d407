{{- define "so.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* app.kubernetes.io/name is always the chart name: the alerts select job="sprint-orchestrator". */}}
{{- define "so.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "so.labels" -}}
{{ include "so.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sprint-orchestrator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "so.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The namespace of the task Pods. */}}
{{- define "so.taskNamespace" -}}
{{ .Values.tasks.namespace | default .Release.Namespace }}
{{- end -}}

{{/* The registry the nodes pull task images from: tasks.registry, else the host of image.repository. */}}
{{- define "so.registry" -}}
{{ .Values.tasks.registry | default (first (splitList "/" .Values.image.repository)) }}
{{- end -}}

{{/* host:port task Pods reach the operator's workspace endpoint on. */}}
{{- define "so.transferAddress" -}}
{{- $host := .Values.tasks.transfer.address | default (printf "%s-transfer.%s.svc" (include "so.fullname" .) .Release.Namespace) -}}
{{ $host }}:{{ .Values.tasks.transfer.port }}
{{- end -}}

{{/* The operator's configuration file: config.*, the containers section from tasks.*, trees on the
state volume, the image's bundled examples (the demo team's recipes) allowed as host paths. */}}
{{- define "so.config" -}}
{{- $orchestrator := deepCopy (.Values.config.orchestrator | default dict) -}}
{{- $allowed := concat ($orchestrator.allowed_host_paths | default list) (list "/opt/sprint-orchestrator/examples") -}}
{{- $_ := set $orchestrator "allowed_host_paths" ($allowed | uniq) -}}
{{- $git := merge (deepCopy (.Values.config.git | default dict)) (dict "working_trees_path" "/var/lib/sprint-orchestrator/trees") -}}
{{- $containers := dict "runtime" .Values.tasks.runtime -}}
{{- if eq .Values.tasks.runtime "pods" -}}
{{- $_ := set $containers "base_image" (.Values.tasks.image | default (include "so.image" .)) -}}
{{- $_ := set $containers "registry" (include "so.registry" .) -}}
{{- $_ := set $containers "registry_plain_http" .Values.tasks.registryPlainHTTP -}}
{{- $_ := set $containers "pods_namespace" (include "so.taskNamespace" .) -}}
{{- $_ := set $containers "transfer_address" (include "so.transferAddress" .) -}}
{{- $_ := set $containers "transfer_listen" (printf "0.0.0.0:%d" (int .Values.tasks.transfer.port)) -}}
{{- $_ := set $containers "proxy_port" (int .Values.tasks.proxy.port) -}}
{{- $_ := set $containers "canary_port" (int .Values.tasks.canary.port) -}}
{{- $_ := set $containers "network_policy_wait" (int .Values.tasks.canary.policyWaitSeconds) -}}
{{- $_ := set $containers "warm_gate_pods" (int (.Values.tasks.warmGatePods | default 0)) -}}
{{- if .Values.tasks.registryAuthSecret }}{{ $_ := set $containers "registry_auth_file" "/etc/sprint-orchestrator-registry/config.json" }}{{ end -}}
{{- with .Values.tasks.imagePullSecret }}{{ $_ := set $containers "image_pull_secret" . }}{{ end -}}
{{- with .Values.tasks.packageSources }}{{ $_ := set $containers "package_sources" (dict "apt" (.apt | default list) "pip" (.pip | default list)) }}{{ end -}}
{{- end -}}
{{- $config := dict "orchestrator" $orchestrator "git" $git "containers" $containers -}}
{{- with .Values.config.kaiban }}{{ $_ := set $config "kaiban" . }}{{ end -}}
{{- with .Values.config.retention }}{{ $_ := set $config "retention" . }}{{ end -}}
{{ toYaml $config }}
{{- end -}}

{{/* The dashboard asks the operator for task diffs (handlers/diffs.py). */}}
{{- define "so.diffs" -}}
{{- if and .Values.dashboard.enabled .Values.dashboard.diffs.enabled }}true{{ end -}}
{{- end -}}
{{- define "so.diffsSecret" -}}
{{- .Values.dashboard.diffs.tokenSecret | default (printf "%s-diffs" (include "so.fullname" .)) -}}
{{- end -}}
{{- define "so.diffsURL" -}}
{{- $host := .Values.dashboard.diffs.service.clusterIP | default (printf "%s-diffs.%s.svc" (include "so.fullname" .) .Release.Namespace) -}}
http://{{ $host }}:{{ .Values.dashboard.diffs.port }}
{{- end -}}
