"""The name of every file and folder the two roles keep beside the results themselves.

Each is defined here once; the modules that read or write one import its name from here, so
grepping for a name finds every place that touches the file. Hidden names (leading dot) are
never shipped by ``pack`` and never mistaken for a model by either role's scan.
"""

# In every results root (both roles): Contract 1.
MANIFEST_NAME = ".wandb_eval_manifest.json"

# In the outbox (remote role writes, local role reads; acks the other way): Contract 2.
INDEX_NAME = "index.json"
ACKS_DIR = "acks"
PACKER_STATE_NAME = ".packer-state.json"
PACK_LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"
# Scratch files of one pack's processes (compressed pieces, snapshot records), removed when it
# ends; a crash leaves them to the next pack, which deletes every TEMP_PREFIX file.
SPOOL_PREFIX = TEMP_PREFIX + "spool-"

# In the local inbox (pull): verified bundles, partial downloads and the puller's own lock.
PULL_STATE_NAME = ".pull-state.json"
PULL_LOCK_NAME = ".pull.lock"
PART_SUFFIX = ".part"

# In the local results root (unpack): what has been applied, and the crash-safe staging area.
LEDGER_NAME = ".unpack-ledger.json"
STAGING_DIR = ".unpack-staging"
UNPACK_LOCK_NAME = ".unpack.lock"
JOURNAL_SUFFIX = ".journal.json"
# A bundle may never write these: they are the unpacker's own bookkeeping.
UNPACK_RESERVED = (LEDGER_NAME, STAGING_DIR, UNPACK_LOCK_NAME)

# In the uploader's state directory (upload, the service loop, health and status).
DEFAULT_STATE_DIR = "state/wandb_eval_uploader"
UPLOAD_LOCK_NAME = ".upload.lock"
HEARTBEAT_NAME = "heartbeat.json"
# Offline runs keep their own model states here (see local.upload.uploader.state.mode_state_dir).
OFFLINE_SUBDIR = "offline"
