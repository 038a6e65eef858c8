{{/* Names, labels and the per-model settings shared by every template. */}}

{{- define "vllm-fleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, cut to 32 so that "-<model name>" (at most 30) still fits 63. */}}
{{- define "vllm-fleet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 32 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 32 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 32 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vllm-fleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "vllm-fleet.labels" -}}
helm.sh/chart: {{ include "vllm-fleet.chart" . }}
app.kubernetes.io/name: {{ include "vllm-fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tenantry
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one model. Call with (dict "root" $ "model" $m). */}}
{{- define "vllm-fleet.modelSelectorLabels" -}}
app.kubernetes.io/name: {{ include "vllm-fleet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: model-server
tenantry.dev/model: {{ .model.name }}
{{- end -}}

{{- define "vllm-fleet.modelLabels" -}}
{{ include "vllm-fleet.labels" .root }}
app.kubernetes.io/component: model-server
tenantry.dev/model: {{ .model.name }}
{{- end -}}

{{/* Name of a model's Deployment and Service. Call with (dict "root" $ "model" $m). */}}
{{- define "vllm-fleet.modelFullname" -}}
{{- printf "%s-%s" (include "vllm-fleet.fullname" .root) .model.name -}}
{{- end -}}

{{/* The name clients ask for. */}}
{{- define "vllm-fleet.servedModelName" -}}
{{- default .model .servedModelName -}}
{{- end -}}

{{/*
The fleet's models with `defaults` filled in, as YAML: {"models": [...]}.
Use: {{- range (include "vllm-fleet.models" . | fromYaml).models }}
*/}}
{{- define "vllm-fleet.models" -}}
{{- $models := list -}}
{{- $seen := dict -}}
{{- range .Values.models -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "models: the name %q is used twice; each model needs its own name" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- $models = append $models (mergeOverwrite (deepCopy $.Values.defaults) (deepCopy .)) -}}
{{- end -}}
{{- toYaml (dict "models" $models) -}}
{{- end -}}
