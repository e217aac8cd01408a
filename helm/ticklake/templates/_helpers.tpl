{{/* Chart name, truncated to the 63 characters Kubernetes allows in labels. */}}
{{- define "ticklake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release name, plus the chart name unless it already holds it. */}}
{{- define "ticklake.fullname" -}}
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

{{- define "ticklake.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ticklake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ticklake
{{- end }}

{{/* Selector labels of one component: include "ticklake.selectorLabels" (list . "sink") */}}
{{- define "ticklake.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "ticklake.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "ticklake.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ticklake.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ticklake.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The Secret holding the credentials: the user's, or the chart's, or none. */}}
{{- define "ticklake.secretName" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if or .Values.credentials.accessKeyId .Values.credentials.secretAccessKey .Values.credentials.extra }}
{{- include "ticklake.fullname" . }}
{{- end }}
{{- end }}

{{- define "ticklake.httpPort" -}}
{{- (.Values.config.http | default dict).port | default 9100 }}
{{- end }}

{{/*
The sink's shutdown deadline (worker/config.py default 30 s) rounded up, and
the grace period Kubernetes gives the pod: the deadline plus a margin, so a
SIGTERM'd sink always finishes its last flush and commit.
*/}}
{{- define "ticklake.sinkShutdownDeadline" -}}
{{- $sink := .Values.config.sink | default dict }}
{{- $d := $sink.shutdown_deadline_s | default 30 }}
{{- ceil $d | int }}
{{- end }}

{{- define "ticklake.sinkGracePeriod" -}}
{{- add (include "ticklake.sinkShutdownDeadline" . | int) (int .Values.sink.terminationGraceExtraSeconds) }}
{{- end }}

{{/* Render-time checks: fail early instead of deploying something broken. */}}
{{- define "ticklake.validate" -}}
{{- $partitions := int .Values.sink.topicPartitions }}
{{- if lt $partitions 1 }}
{{- fail "sink.topicPartitions must be at least 1" }}
{{- end }}
{{- if gt (int .Values.sink.replicas) $partitions }}
{{- fail (printf "sink.replicas (%d) exceeds sink.topicPartitions (%d): a consumer group cannot use more consumers than partitions" (int .Values.sink.replicas) $partitions) }}
{{- end }}
{{- with .Values.sink.autoscaling }}
{{- if .enabled }}
{{- if gt (int .maxReplicas) $partitions }}
{{- fail (printf "sink.autoscaling.maxReplicas (%d) exceeds sink.topicPartitions (%d)" (int .maxReplicas) $partitions) }}
{{- end }}
{{- if gt (int .minReplicas) (int .maxReplicas) }}
{{- fail "sink.autoscaling.minReplicas exceeds sink.autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- end }}
{{- if not (int .Values.sink.terminationGraceExtraSeconds) }}
{{- fail "sink.terminationGraceExtraSeconds must be at least 1: the grace period must exceed config.sink.shutdown_deadline_s" }}
{{- end }}
{{- if and .Values.credentials.existingSecret (or .Values.credentials.accessKeyId .Values.credentials.secretAccessKey .Values.credentials.extra) }}
{{- fail "set either credentials.existingSecret or the credential values, not both" }}
{{- end }}
{{- if not .Values.securityContext.readOnlyRootFilesystem }}
{{- fail "securityContext.readOnlyRootFilesystem must stay true" }}
{{- end }}
{{- end }}

{{/*
The pod spec shared by both components:
include "ticklake.podSpec" (dict "root" . "component" "sink" "values" .Values.sink "grace" 45)
*/}}
{{- define "ticklake.podSpec" -}}
{{- $root := .root }}
{{- $v := .values -}}
serviceAccountName: {{ include "ticklake.serviceAccountName" $root }}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
terminationGracePeriodSeconds: {{ .grace }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
containers:
  - name: {{ .component }}
    image: {{ include "ticklake.image" $root | quote }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: [{{ .command | quote }}, "--config", "/etc/ticklake/config.yaml"]
    ports:
      - name: http
        containerPort: {{ include "ticklake.httpPort" $root }}
        protocol: TCP
    env:
      - name: HOME
        value: /tmp
      {{- with $root.Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with include "ticklake.secretName" $root }}
    envFrom:
      - secretRef:
          name: {{ . }}
    {{- end }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      {{- toYaml $root.Values.probes.liveness | nindent 6 }}
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      {{- toYaml $root.Values.probes.readiness | nindent 6 }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: /etc/ticklake
        readOnly: true
      - name: tmp
        mountPath: /tmp
volumes:
  - name: config
    configMap:
      name: {{ include "ticklake.fullname" $root }}-config
  - name: tmp
    emptyDir:
      sizeLimit: {{ $root.Values.tmpVolume.sizeLimit }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
