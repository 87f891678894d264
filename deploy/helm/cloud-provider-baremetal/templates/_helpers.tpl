{{/*
Labels on every object: the label kustomize adds in deploy/base
(app.kubernetes.io/part-of) plus Helm's usual ones. Names are fixed, not
prefixed with the release name, because they are part of the contract with
the binaries (lease, ConfigMaps, Secret) and with deploy/ (RBAC names): one
release per cluster.
*/}}
{{- define "baremetal.labels" -}}
app.kubernetes.io/part-of: cloud-provider-baremetal
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "baremetal.ccm.labels" -}}
app.kubernetes.io/name: baremetal-cloud-controller-manager
{{ include "baremetal.labels" . }}
{{- end }}

{{- define "baremetal.announcer.labels" -}}
app.kubernetes.io/name: baremetal-announcer
{{ include "baremetal.labels" . }}
{{- end }}

{{/*
Image reference from {repository, tag, digest}: a digest pins the image
exactly and wins over the tag; the tag defaults to the chart's appVersion.
Call with (dict "image" .Values.x.image "root" $).
*/}}
{{- define "baremetal.image" -}}
{{- $img := .image -}}
{{- if not $img.repository -}}
{{- fail "image.repository must not be empty" -}}
{{- end -}}
{{- if $img.digest -}}
{{- if not (hasPrefix "sha256:" $img.digest) -}}
{{- fail (printf "image.digest %q must start with sha256:" $img.digest) -}}
{{- end -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (toString ($img.tag | default .root.Chart.AppVersion)) -}}
{{- end -}}
{{- end }}
