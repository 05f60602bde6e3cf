"""Song Service: the metadata (name, artist, album, duration, year) of each uploaded resource."""
