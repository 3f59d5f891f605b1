"""Local role: pull bundles over SFTP, unpack them safely and upload new checkpoints to W&B."""

__version__ = "0.1.0"
