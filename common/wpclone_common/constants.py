"""Names shared by the operator, the API, the CRDs and the tests: one place for each (the copy's own
failure reasons are the engine's, in wpclone_engine.reasons, and named here too)."""

from wpclone_engine.reasons import (  # noqa: F401 - one vocabulary of reasons for the operator and API
    BAD_STREAM,
    BAD_TABLE_DEFINITION,
    DESTINATION_NOT_ALLOWED,
    FORBIDDEN_FILE,
    LOGIN_THROTTLED,
    MALFORMED_STREAM,
    NOT_SUPPORTED,
    SNAPSHOT_UNUSABLE,
)

GROUP = "wpclone.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CLONE_KIND = "WordPressClone"
CLONE_PLURAL = "wordpressclones"
RESTORE_KIND = "CloneRestore"
RESTORE_PLURAL = "clonerestores"
SNAPSHOT_KIND = "SourceSnapshot"
SNAPSHOT_PLURAL = "sourcesnapshots"
POOL_KIND = "WordPressClonePool"
POOL_PLURAL = "wordpressclonepools"

FINALIZER = f"{GROUP}/cleanup"
ANNOTATIONS_PREFIX = f"operator.{GROUP}"

LABEL_APP = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_CLONE = f"{GROUP}/clone"
LABEL_JOB_ID = f"{GROUP}/job-id"
LABEL_CUSTOMER = f"{GROUP}/customer-id"
# On a Secret: it holds a site's admin login (username, password) that the operator may read and send
# to that site. The API sets it on the Secrets it writes; users set it on theirs.
LABEL_CREDENTIALS = f"{GROUP}/credentials"
# On what the API makes (resources, Secrets): the tenant whose token made it.
LABEL_TENANT = f"{GROUP}/tenant"
LABEL_POOL = f"{GROUP}/pool"  # on a pool's blank slot (a WordPressClone): the pool's name

# Condition types.
READY = "Ready"
DATABASE_READY = "DatabaseReady"
OBJECTS_READY = "ObjectsReady"
WORKLOAD_READY = "WorkloadReady"
CONTENT_CLONED = "ContentCloned"
# After a copy: whether the clone's database still holds the source's URL, and its reasons.
SOURCE_URLS_REPLACED = "SourceUrlsReplaced"
NONE_LEFT = "NoneLeft"
SOURCE_URLS_LEFT = "SourceUrlsLeft"
NOT_COUNTED = "NotCounted"
# kstatus: True when nothing more happens without the user (a permanent failure, expiry, a pod that
# cannot start).
STALLED = "Stalled"

# Phases of a WordPressClone.
PENDING = "Pending"
PROVISIONING = "Provisioning"
CLONING = "Cloning"
PHASE_READY = "Ready"
FAILED = "Failed"
EXPIRING = "Expiring"
EXPIRED = "Expired"

# A SourceSnapshot's phase while a clone's copy records it (then PHASE_READY above).
RECORDING = "Recording"

# Phases of a CloneRestore (with PENDING and FAILED above); the last three end it.
CHECKING = "Checking"
BACKING_UP = "BackingUp"
RESTORING = "Restoring"
COMPLETED = "Completed"
ROLLED_BACK = "RolledBack"
RESTORE_ENDED = (COMPLETED, ROLLED_BACK, FAILED)

# Reasons of a login Secret the operator cannot use (permanent: the user must fix the Secret).
CREDENTIALS_MISSING = "CredentialsMissing"
CREDENTIALS_NOT_OPTED_IN = "CredentialsNotOptedIn"
CREDENTIALS_INVALID = "CredentialsInvalid"
# Reasons of what a clone may not ask for, or may not take over (permanent).
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
HOST_NOT_ALLOWED = "HostNotAllowed"
NAME_CONFLICT = "NameConflict"
NO_SOURCE = "NoSource"  # a clone without spec.source that no pool made
STANDBY = "Standby"  # a pool's blank slot, Ready to be taken (its Ready condition's reason)
POOL_MISS = "PoolMiss"  # a clone's pool had no ready slot of its shape: it is made the usual way
SLOTS_READY = "SlotsReady"  # a pool's Ready: every wanted slot is ready
SLOTS_STARTING = "SlotsStarting"  # a pool's Ready False: slots still being made

# Reasons of the WorkloadReady (and then Ready) condition: the clone's pod.
POD_READY = "PodReady"
POD_NOT_READY = "PodNotReady"
IMAGE_UNAVAILABLE = "ImageUnavailable"
POD_CONFIG_ERROR = "PodConfigError"
POD_CRASH_LOOPING = "PodCrashLooping"
# A pod problem that needs the user (a wrong image, a broken configuration, a crashing WordPress):
# the kubelet's waiting reason -> ours.
POD_PROBLEMS = {
    "ErrImagePull": IMAGE_UNAVAILABLE, "ImagePullBackOff": IMAGE_UNAVAILABLE,
    "ErrImageNeverPull": IMAGE_UNAVAILABLE, "InvalidImageName": IMAGE_UNAVAILABLE,
    "CreateContainerConfigError": POD_CONFIG_ERROR,
    "CrashLoopBackOff": POD_CRASH_LOOPING,
}

# A copy Job (the operator's copy_jobs): its component label, and the reasons a clone or restore
# waiting on one shows. GAVE_UP: still failing when its time (or its tries) ran out.
COPY_COMPONENT = "copy"
COPY_QUEUED = "WaitingForCopySlot"
COPYING = "Copying"
GAVE_UP = "GaveUp"
