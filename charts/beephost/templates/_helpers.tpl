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
Pod-level settings every component shares: no API token (but for the controller with
engine=kubernetes: "automountToken" true), no service-link variables (they would
collide with BEEPHOST_*_PORT settings), pull secrets, security context, scheduling.
Call with (dict "root" $ "component" .Values.httpBackend).
*/}}
{{- define "beephost.podCommon" -}}
automountServiceAccountToken: {{ if .automountToken }}true{{ else }}false{{ end }}
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

{{/*
"true" when the controller starts its backends as pods (controller.enabled and
controller.engine=kubernetes), else empty: then the chart renders the sandbox
namespace's objects and mounts the controller's ServiceAccount token.
*/}}
{{- define "beephost.kubernetesEngine" -}}
{{- if and .Values.controller.enabled (eq .Values.controller.engine "kubernetes") }}true{{ end }}
{{- end }}

{{/*
The namespace of the sandbox pods: sandboxes.namespace, or "<release namespace>-sandboxes".
Never truncated: a cut name could be another namespace.
*/}}
{{- define "beephost.sandboxNamespace" -}}
{{- if .Values.sandboxes.namespace }}
{{- .Values.sandboxes.namespace }}
{{- else }}
{{- /* An empty release namespace (helm lint offline) is Kubernetes' "default". */}}
{{- $name := printf "%s-sandboxes" (.Release.Namespace | default "default") }}
{{- if gt (len $name) 63 }}
{{- fail (printf "sandboxes.namespace: %q is longer than 63 characters; name the sandbox namespace" $name) }}
{{- end }}
{{- $name }}
{{- end }}
{{- end }}

{{/*
The controller's ServiceAccount: the created one (controller.serviceAccount.name or
"<fullname>-controller"), else controller.serviceAccount.name, else "default".
*/}}
{{- define "beephost.controllerServiceAccount" -}}
{{- $account := .Values.controller.serviceAccount }}
{{- if $account.create }}
{{- $account.name | default (include "beephost.componentFullname" (dict "root" . "component" "controller")) }}
{{- else }}
{{- $account.name | default "default" }}
{{- end }}
{{- end }}

{{/*
The controller's settings for its backends (EnvVar list): the engine, pools and
lifetimes (either engine; a null value leaves the controller's default) and, with
engine=kubernetes, the engine's BEEPHOST_CONTROLLER_KUBERNETES_* (JSON where the
setting is JSON). KUBECONFIG stays unset: the pod's own service account is used.
*/}}
{{- define "beephost.sandboxEnv" -}}
{{- $s := .Values.sandboxes -}}
- name: BEEPHOST_CONTROLLER_ENGINE
  value: {{ .Values.controller.engine | quote }}
{{- if eq .Values.controller.engine "kubernetes" }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_NAMESPACE
  value: {{ include "beephost.sandboxNamespace" . | quote }}
{{- with $s.registry }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_REGISTRY
  value: {{ . | quote }}
{{- end }}
{{- with $s.pullRegistry }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_PULL_REGISTRY
  value: {{ . | quote }}
{{- end }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_IMAGE_PULL_SECRETS
  value: {{ $s.imagePullSecrets | default list | toJson | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_ENDPOINT
  value: {{ $s.endpoint | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_CLUSTER_DOMAIN
  value: {{ $s.clusterDomain | default "cluster.local" | quote }}
{{- with $s.runtimeClassName }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_RUNTIME_CLASS
  value: {{ . | quote }}
{{- end }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_NODE_SELECTOR
  value: {{ $s.nodeSelector | default dict | toJson | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_TOLERATIONS
  value: {{ $s.tolerations | default list | toJson | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_AFFINITY
  value: {{ $s.affinity | default dict | toJson | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_TOPOLOGY_SPREAD
  value: {{ $s.topologySpreadConstraints | default list | toJson | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_CPU_REQUEST_RATIO
  value: {{ $s.cpuRequestRatio | float64 | toString | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_INGRESS_FROM
  value: {{ $s.ingressFrom | default list | toJson | quote }}
- name: BEEPHOST_CONTROLLER_KUBERNETES_POD_FIREWALL
  value: {{ ternary "true" "false" (ne $s.podFirewall false) | quote }}
{{- end }}
{{- with $s.poolSize }}
- name: BEEPHOST_CONTROLLER_POOL_SIZE
  value: {{ toJson . | quote }}
{{- end }}
{{- range $setting := list (list "BACKEND_TTL" $s.ttl) (list "BACKEND_IDLE_TIMEOUT" $s.idleTimeout) (list "MAX_BACKENDS" $s.maxBackends) (list "RESTART_LIMIT" $s.restartLimit) }}
{{- $value := index $setting 1 }}
{{- if not (kindIs "invalid" $value) }}
- name: BEEPHOST_CONTROLLER_{{ index $setting 0 }}
  value: {{ $value | int64 | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
