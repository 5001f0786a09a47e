{{/* Full name of the release's objects. */}}
{{- define "sioh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sioh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sioh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sioh.selectorLabels" -}}
app.kubernetes.io/name: socketio-hub-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sioh.labels" -}}
{{ include "sioh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
