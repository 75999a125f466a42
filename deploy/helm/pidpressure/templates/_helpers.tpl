{{- define "pidpressure.labels" -}}
app.kubernetes.io/name: pidpressure
{{- end }}

{{- define "pidpressure.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "pidpressure.monitor" -}}
{{- $m := deepCopy .Values.monitor -}}
{{- if .Values.kmsg.enabled -}}
{{- $_ := set $m.sources.kmsg "enabled" true -}}
{{- end -}}
{{- if .Values.ebpf.enabled -}}
{{- $_ := set $m.sources.ebpf "mode" "auto" -}}
{{- end -}}
{{- $m | toPrettyJson -}}
{{- end }}
