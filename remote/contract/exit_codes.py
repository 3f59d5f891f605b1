"""What the exit codes of both roles mean (listed in the README and in every ``--help``).

0    everything done
1    some unit of work failed (the others went on); see the log lines
2    usage or configuration error (bad flag, missing file, malformed input)
3    transient failure that outlasted the retries (network down, server 5xx): try again later
4    permanent failure that retrying cannot fix (authentication, host key, deleted W&B run)
5    another process holds the lock (one packer per outbox, one uploader per state directory)
130  interrupted (Ctrl-C)
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 3
EXIT_PERMANENT = 4
EXIT_BUSY = 5
EXIT_INTERRUPTED = 130

# One line per code, for the commands' --help epilog.
SUMMARY = (
    "exit codes: 0 ok, 1 some item failed, 2 usage/config error, 3 transient failure after retries,\n"
    "4 permanent failure (auth, host key, deleted run), 5 another process holds the lock."
)
