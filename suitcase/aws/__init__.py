"""The AWS layer: where calls go (clients, the embedded endpoint), S3, EBS and AMIs."""
