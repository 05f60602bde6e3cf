-- One database per service. The postgres image runs this once, on an empty data volume; the
-- services would also create their database when missing, this makes the first start not depend
-- on that.
CREATE DATABASE storage_db;
CREATE DATABASE song_db;
CREATE DATABASE resource_db;
