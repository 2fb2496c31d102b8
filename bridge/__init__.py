"""s3-event-bridge: run file-in/file-out programs on S3 events."""

__version__ = "0.1.0"
