"""Storage Service: where the platform's files live (STAGING and PERMANENT S3 locations)."""
