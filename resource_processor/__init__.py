"""Resource Processor: extracts MP3 metadata and posts it to the Song Service."""
