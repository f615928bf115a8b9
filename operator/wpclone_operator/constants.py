"""Names shared by the operator, the API, the CRDs and the tests: one place for each."""

GROUP = "wpclone.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CLONE_KIND = "WordPressClone"
CLONE_PLURAL = "wordpressclones"
RESTORE_KIND = "CloneRestore"
RESTORE_PLURAL = "clonerestores"

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

# Condition types.
READY = "Ready"
DATABASE_READY = "DatabaseReady"
OBJECTS_READY = "ObjectsReady"
WORKLOAD_READY = "WorkloadReady"
CONTENT_CLONED = "ContentCloned"
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

# Reasons of a login Secret the operator cannot use (permanent: the user must fix the Secret).
CREDENTIALS_MISSING = "CredentialsMissing"
CREDENTIALS_NOT_OPTED_IN = "CredentialsNotOptedIn"
CREDENTIALS_INVALID = "CredentialsInvalid"
# Reasons of what a clone may not ask for, or may not take over (permanent).
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
HOST_NOT_ALLOWED = "HostNotAllowed"
NAME_CONFLICT = "NameConflict"

# Reasons of a copy refused for what the source sent (everything a source sends is hostile until parsed).
# The stream broke off, or the exporter reported a failure: trying again may succeed.
BAD_STREAM = "BadStream"
# Not what a migrator sends (unknown or oversized frames, lying counts, malformed records, JSON or numbers):
# the same source sends it again, so trying again will not help.
MALFORMED_STREAM = "MalformedStream"
# A table definition that would do more than create a table (a SELECT, an engine or option outside the
# allowed ones, comments, a second statement): refused before it reaches any database.
BAD_TABLE_DEFINITION = "BadTableDefinition"

# A restore whose uploads hold a file a web server may run or read as configuration (PHP in any part of
# the name, CGI and other scripts, .htaccess, .user.ini, web.config, ...): the target's migrator refuses
# it (reason forbidden_file) and nothing is written. Permanent: the clone's uploads must be cleaned.
FORBIDDEN_FILE = "ForbiddenFile"

# A source or target URL the outbound policy refuses (outbound.py): its host is or resolves to a loopback,
# private, link-local, cluster or metadata address, or the URL is not plain http(s). Permanent.
DESTINATION_NOT_ALLOWED = "DestinationNotAllowed"

# The site's migrator refused its administrator's login after too many failed ones (429): it takes
# logins again after its window (15 minutes). Permanent for the job: trying again would only lengthen it.
LOGIN_THROTTLED = "LoginThrottled"

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

# The migrator's refusal codes (its REST error codes) that have a reason of their own; the others
# are MigratorError, the code in the message.
MIGRATOR_CODES = {"wpclone_forbidden_file": FORBIDDEN_FILE}
