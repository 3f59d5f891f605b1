"""Getting bundles from the training machine: SFTP connections, resumable downloads, pull, acks."""
