"""Why a copy or restore failed: the reasons the engine raises (TransferError, WordPressError), which the
operator writes into conditions and the API returns. Everything a source sends is hostile until parsed."""

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

# A merge restore found rows changed on both sides (on the clone and in production since the clone was
# taken) under the policy Fail, or a row of the clone collides with a unique key production added: nothing
# was written. Permanent: choose a policy (PreferClone, PreferProduction) or restore again later.
CONFLICT = "Conflict"
# Production changed between a merge's plan and its transaction: nothing was written. Trying again plans anew.
PRODUCTION_CHANGED = "ProductionChanged"
# A merge restore of a clone that has no baseline (made before merges existed, or its baseline is gone).
NO_BASELINE = "NoBaseline"

# What a SQLite clone cannot do yet or at all (a merge baseline; a restore from it; a copy the operator would
# run itself, where the clone's database volume is out of reach): permanent, the clone's engine decides it.
NOT_SUPPORTED = "NotSupported"

# A source snapshot (snapshot.py) that cannot serve a copy: gone, damaged, or recorded for other parts of the
# site. The operator deletes it, and the clone copies again from the site itself.
SNAPSHOT_UNUSABLE = "SnapshotUnusable"

# A database chunk that reached the migrator before the one it follows: sent again once that one is answered
# (import_chunks.py); seen in a failure only if the migrator refused it again.
CHUNK_EARLY = "ChunkEarly"

# The migrator's refusal codes (its REST error codes) that have a reason of their own; the others
# are MigratorError, the code in the message.
MIGRATOR_CODES = {"wpclone_forbidden_file": FORBIDDEN_FILE, "wpclone_merge_conflict": CONFLICT,
                  "wpclone_production_changed": PRODUCTION_CHANGED, "wpclone_not_yet": CHUNK_EARLY}
