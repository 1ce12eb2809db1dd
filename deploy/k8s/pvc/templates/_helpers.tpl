{{- define "pvc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pvc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "pvc.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; pass (dict "root" $ "component" "gateway"). */}}
{{- define "pvc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "pvc.selectorLabels" . }}
{{- end -}}

{{- define "pvc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pvc.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "pvc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "pvc.secretName" -}}
{{- default (printf "%s-secrets" (include "pvc.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "pvc.serviceHost" -}}
{{- printf "%s-%s" (include "pvc.fullname" .root) .name -}}
{{- end -}}

{{/* Environment shared by every pvc process. */}}
{{- define "pvc.env" -}}
- name: PVC_ENV
  value: prod
- name: PVC_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: PVC_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
- name: DATABASE_URL
  valueFrom: { secretKeyRef: { name: {{ include "pvc.secretName" . }}, key: database-url } }
- name: NATS_URL
  valueFrom: { secretKeyRef: { name: {{ include "pvc.secretName" . }}, key: nats-url } }
- name: PVC_INTERNAL_TOKEN
  valueFrom: { secretKeyRef: { name: {{ include "pvc.secretName" . }}, key: internal-token } }
- name: PVC_API_KEY_PEPPER
  valueFrom: { secretKeyRef: { name: {{ include "pvc.secretName" . }}, key: api-key-pepper } }
- name: PVC_WEBHOOK_ENCRYPTION_KEY
  valueFrom: { secretKeyRef: { name: {{ include "pvc.secretName" . }}, key: webhook-encryption-key } }
{{- range $name, $svc := .Values.services }}
{{- if $svc.enabled }}
- name: PVC_{{ upper $name }}_ADDR
  value: {{ printf "%s:50051" (include "pvc.serviceHost" (dict "root" $ "name" $name)) | quote }}
{{- end }}
{{- end }}
{{- with .Values.outbound.harnessAllowedNetworks }}
- name: PVC_HARNESS_ALLOWED_NETWORKS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.outbound.webhookAllowedNetworks }}
- name: PVC_WEBHOOK_ALLOWED_NETWORKS
  value: {{ . | quote }}
{{- end }}
{{- if .Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otlpEndpoint | quote }}
{{- end }}
{{- end -}}

{{/* Annotations that roll pods when their configuration changes. */}}
{{- define "pvc.checksums" -}}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
checksum/envoy: {{ include (print .Template.BasePath "/envoy.yaml") . | sha256sum }}
{{- end -}}

{{- define "pvc.volumesForReadOnlyRoot" -}}
- name: tmp
  emptyDir: {}
{{- end -}}
