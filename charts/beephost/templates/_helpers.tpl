{{/*
Chart name (nameOverride wins), at most 63 characters.
*/}}
{{- define "beephost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: "<release>-<chart>", or the release name when it already
contains the chart name; fullnameOverride wins. At most 63 characters.
*/}}
{{- define "beephost.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "beephost.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "beephost.labels" -}}
helm.sh/chart: {{ include "beephost.chart" . }}
{{ include "beephost.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: beephost
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of the release.
*/}}
{{- define "beephost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "beephost.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component's objects. Call with (dict "root" $ "component" "controller").
*/}}
{{- define "beephost.componentLabels" -}}
{{ include "beephost.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "root" $ "component" "controller").
*/}}
{{- define "beephost.componentSelectorLabels" -}}
{{ include "beephost.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of one component's objects: "<fullname>-<component>".
Call with (dict "root" $ "component" "controller").
*/}}
{{- define "beephost.componentFullname" -}}
{{- printf "%s-%s" (include "beephost.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the Secret holding the tokens: auth.existingSecret or "<fullname>-tokens".
*/}}
{{- define "beephost.tokenSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-tokens" (include "beephost.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
An env var read from the tokens Secret.
Call with (dict "root" $ "name" "BEEPHOST_CONTROLLER_TOKEN" "key" $.Values.auth.keys.controller).
*/}}
{{- define "beephost.tokenEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "beephost.tokenSecretName" .root }}
      key: {{ .key }}
{{- end }}

{{/*
Image reference: [global.imageRegistry/]repository, then @digest (wins) or :tag.
Call with (dict "root" $ "image" .Values.controller.image).
*/}}
{{- define "beephost.image" -}}
{{- $repository := .image.repository }}
{{- with .root.Values.global.imageRegistry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repository .image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (toString (.image.tag | default .root.Chart.AppVersion)) }}
{{- end }}
{{- end }}

{{/*
Prometheus scrape annotations. Call with (dict "port" 8600).
*/}}
{{- define "beephost.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}

{{/*
Probe timing from values (without "enabled"); the template adds the handler.
*/}}
{{- define "beephost.probeTiming" -}}
{{- toYaml (omit . "enabled") }}
{{- end }}

{{/*
Pod-level settings every component shares: no API token, no service-link variables
(they would collide with BEEPHOST_*_PORT settings), pull secrets, security context,
scheduling. Call with (dict "root" $ "component" .Values.httpBackend).
*/}}
{{- define "beephost.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .component.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .component.terminationGracePeriodSeconds }}
{{- with .component.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Container-level settings every component shares: image, command, security context,
resources. Call with (dict "root" $ "component" .Values.httpBackend).
*/}}
{{- define "beephost.containerCommon" -}}
image: {{ include "beephost.image" (dict "root" .root "image" .component.image) | quote }}
imagePullPolicy: {{ .component.image.pullPolicy }}
{{- with .component.command }}
command:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.args }}
args:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .component.securityContext | nindent 2 }}
resources:
  {{- toYaml .component.resources | nindent 2 }}
{{- end }}

{{/*
Where a backend's pods run: its RuntimeClass (e.g. gvisor, kata) and its topology
spread constraints. A constraint without a labelSelector gets the component's
selector labels, so spreading the replicas needs only maxSkew, topologyKey and
whenUnsatisfiable. Call with (dict "root" $ "component" "http-backend" "values" $c).
*/}}
{{- define "beephost.podPlacement" -}}
{{- with .values.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
{{- $selector := include "beephost.componentSelectorLabels" (dict "root" $.root "component" $.component) | fromYaml }}
topologySpreadConstraints:
{{- range . }}
{{- $constraint := deepCopy . }}
{{- if not $constraint.labelSelector }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
  - {{ toYaml $constraint | nindent 4 | trim }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Service's session affinity: ClientIP keeps a client on one pod (its sessions,
handles and workspace files live there), None (the default) renders nothing.
Call with the component's service values.
*/}}
{{- define "beephost.sessionAffinity" -}}
{{- if eq .sessionAffinity "ClientIP" }}
sessionAffinity: ClientIP
sessionAffinityConfig:
  clientIP:
    timeoutSeconds: {{ .sessionAffinityConfig.clientIP.timeoutSeconds | int }}
{{- end }}
{{- end }}
