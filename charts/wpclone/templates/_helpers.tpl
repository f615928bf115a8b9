{{/* Names, labels and the RBAC rules shared by the templates. */}}

{{- define "wpclone.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "wpclone.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: call with (list $ "operator"). */}}
{{- define "wpclone.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "wpclone.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "wpclone.apiNamespace" -}}
{{ .Values.api.namespace | default .Release.Namespace }}
{{- end -}}

{{/* What the operator does in each namespace it watches; the comments say which code needs each rule. */}}
{{- define "wpclone.operatorRules" -}}
# kopf lists and watches clones, patches finalizers and its annotations (progress, diff base); expiry with
# expiryPolicy Delete deletes a clone; a restore reads the clone it restores from. A warm pool creates its
# blank slots (clones without a source) and deletes them; a clone claims a slot (an annotation) and deletes it.
- apiGroups: [wpclone.dev]
  resources: [wordpressclones]
  verbs: [get, list, watch, create, patch, delete]
# Warm pools are the users': kopf watches them and patches its annotations; a claim counts itself in status.
- apiGroups: [wpclone.dev]
  resources: [wordpressclonepools]
  verbs: [get, list, watch, patch]
# kopf lists and watches restores and patches its annotations (restores have no finalizer).
- apiGroups: [wpclone.dev]
  resources: [clonerestores]
  verbs: [list, watch, patch]
# Source snapshots are the operator's own: created when a clone records one, listed to find one for a
# clone, watched by kopf (their expiry timer), patched (the recording clone's ownerReference removed once
# recorded), deleted when expired or unusable.
- apiGroups: [wpclone.dev]
  resources: [sourcesnapshots]
  verbs: [list, watch, create, patch, delete]
# kopf and the copy's progress reports write the status through the status subresource.
- apiGroups: [wpclone.dev]
  resources: [wordpressclones/status, clonerestores/status, sourcesnapshots/status, wordpressclonepools/status]
  verbs: [patch]
# A clone's children carry blockOwnerDeletion; clusters with OwnerReferencesPermissionEnforcement check this.
- apiGroups: [wpclone.dev]
  resources: [wordpressclones/finalizers, sourcesnapshots/finalizers]
  verbs: [update]
# Source and target logins are read, and a login the API wrote is adopted (an ownerReference patched in);
# each clone's db and admin Secrets are created once, read back (also by a restore), deleted on expiry.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch, delete]
# Server-side apply (authorized as patch, and as create when the object is new); deleted on expiry.
# A restore reads the clone's source-checksums ConfigMap. Copy Jobs' ConfigMaps (by label) are listed and
# watched to see a copy's outcome as it is written; watch is also granted to a pool slot's standing copy Job
# on its own ConfigMap, where its plan is handed (a Role grants only what its maker holds).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# Every child is read first: the operator never takes over an object of the same name it did not make.
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]
# Each clone's Ingress, and the NetworkPolicy that fences its pod in.
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [get, create, patch, delete]
# As above; and watched (the clones' own, by label) to see whether a clone's WordPress pod is available.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# A clone's pods are watched (by label) to say why one cannot start (image pull, configuration, crash loop);
# a finished copy Job's pods that mount a volume claim (a snapshot, a SQLite database) are deleted so that
# the claim can go.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, delete]
# Each clone's wp-content claim is created once (never rewritten: its spec is immutable), deleted on expiry;
# a pool slot's is given to the clone that takes the slot (its ownerReferences patched).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, patch, delete]
# kopf posts events about handlers and the operator's warnings (core/v1 Events, always new ones).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Each copy (copy_jobs.py) is a Job: created, read to follow it, listed to count those running (the
# maxJobs cap), deleted to copy again after a spec change; its pod's ServiceAccount, and the Role and
# RoleBinding that let that pod patch its owner's status and its own outcome ConfigMap, nothing else
# (granting those needs the operator to hold them: it does, above). A pool slot's standing copy Job is
# patched when a clone takes the slot (its owner, its deadline), and its Role then lets it read that
# clone's logins.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch, delete]
# A clone that expires but stays (expiryPolicy Retain) loses them like its other children: read first
# (only its own are deleted), then deleted; a taken slot's are given to its clone (owner patched).
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, patch, delete]
{{- end -}}

{{/* What the API does in its namespace (api/wpclone_api/clones.py, restores.py). */}}
{{- define "wpclone.apiRules" -}}
# Clone jobs are WordPressClones: created, found by name or by label (job id, or a restore's source), deleted;
# watched, so that job status and quotas need no list per request; patched to extend a clone's TTL.
- apiGroups: [wpclone.dev]
  resources: [wordpressclones]
  verbs: [get, list, watch, create, patch, delete]
# Restore and rollback jobs are CloneRestores: created, found by job-id label, watched alike.
- apiGroups: [wpclone.dev]
  resources: [clonerestores]
  verbs: [list, watch, create]
# Login Secrets: created (or server-side applied: create + patch), owned by their job, deleted when the job
# cannot be created; a clone's admin login is read for the job status.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch, delete]
{{- end -}}

{{/* Combinations the schema cannot express. */}}
{{- define "wpclone.validate" -}}
{{- if gt (int .Values.clones.defaultTtlMinutes) (int .Values.clones.maxTtlMinutes) -}}
{{- fail (printf "clones.defaultTtlMinutes (%d) must not exceed clones.maxTtlMinutes (%d)" (int .Values.clones.defaultTtlMinutes) (int .Values.clones.maxTtlMinutes)) -}}
{{- end -}}
{{- if and .Values.api.enabled .Values.operator.watchNamespaces (not (has (include "wpclone.apiNamespace" .) .Values.operator.watchNamespaces)) -}}
{{- fail (printf "the API creates clones in namespace %s, which operator.watchNamespaces %v does not include" (include "wpclone.apiNamespace" .) .Values.operator.watchNamespaces) -}}
{{- end -}}
{{- end -}}
