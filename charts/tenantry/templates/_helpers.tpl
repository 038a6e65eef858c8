{{/* Names, labels and small computed values shared by every template. */}}

{{- define "tenantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, cut so that the longest suffix ("-control-plane") still fits 63. */}}
{{- define "tenantry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tenantry.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "tenantry.fullname" .) -}}
{{- end -}}

{{- define "tenantry.operator.fullname" -}}
{{- printf "%s-operator" (include "tenantry.fullname" .) -}}
{{- end -}}

{{- define "tenantry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tenantry.labels" -}}
helm.sh/chart: {{ include "tenantry.chart" . }}
app.kubernetes.io/name: {{ include "tenantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tenantry
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tenantry.controlPlane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "tenantry.controlPlane.labels" -}}
{{ include "tenantry.labels" . }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "tenantry.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "tenantry.operator.labels" -}}
{{ include "tenantry.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "tenantry.controlPlane.serviceAccountName" -}}
{{- if .Values.controlPlane.serviceAccount.create -}}
{{- default (include "tenantry.controlPlane.fullname" .) .Values.controlPlane.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controlPlane.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tenantry.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "tenantry.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Label value marking this installation's Tenants (TENANTRY_INSTALLATION). */}}
{{- define "tenantry.installation" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The namespace of Tenant resources and gateways. */}}
{{- define "tenantry.tenantsNamespace" -}}
{{- default .Release.Namespace .Values.tenants.namespace -}}
{{- end -}}

{{/* repository:tag, the tag defaulting to the chart's appVersion. Call with (list $image $). */}}
{{- define "tenantry.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* The Secret and key holding the database URL. */}}
{{- define "tenantry.database.secretName" -}}
{{- if .Values.database.url -}}
{{- printf "%s-database" (include "tenantry.fullname" .) -}}
{{- else -}}
{{- required "database.existingSecret (or database.url) is required: the control plane keeps tenants in PostgreSQL" .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* In-cluster URL of the control plane, handed to gateways to unseal their credentials. */}}
{{- define "tenantry.controlPlane.internalUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "tenantry.controlPlane.fullname" .) .Release.Namespace (int .Values.controlPlane.port) -}}
{{- end -}}

{{/* One env var read from a Secret key. Call with (list NAME SECRET KEY). */}}
{{- define "tenantry.secretEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 | quote }}
      key: {{ index . 2 | quote }}
{{- end -}}

{{- /*
The tenant gateways as a NetworkPolicy peer (the labels the operator gives them); with a
namespace per tenant, in the namespaces the control plane labels as this installation's.
*/ -}}
{{- define "tenantry.tenantGatewayPeer" -}}
- namespaceSelector:
    matchLabels:
      {{- if .Values.tenants.namespacePerTenant }}
      tenantry.dev/installation: {{ include "tenantry.installation" . | quote }}
      {{- else }}
      kubernetes.io/metadata.name: {{ include "tenantry.tenantsNamespace" . }}
      {{- end }}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: tenant-gateway
      app.kubernetes.io/part-of: tenantry
{{- end -}}
