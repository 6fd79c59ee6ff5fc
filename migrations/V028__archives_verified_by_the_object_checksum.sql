-- Bank scale, the archive's verification: reading the whole object back from S3,
-- decompressing it, parsing its CSV and hashing it again took 0.45 s of a 3.04 s archive of
-- 1,000,000 deliveries (docs/performance.md). The export now sends each part of the
-- multipart upload with its SHA-256 (S3 refuses a part whose bytes do not match it), and
-- the verification compares the checksum S3 reports for the stored object (HeadObject,
-- ChecksumMode=ENABLED: the SHA-256 of the parts' SHA-256s, "-<parts>") and its size with
-- the ones the export computed. The CSV's own SHA-256 is still checked end to end by every
-- restore.
--
-- * campaign_archives.object_checksum: the composite checksum the export computed,
--   `<base64 SHA-256 of the parts' SHA-256s>-<parts>`; null for an archive exported before
--   V028, which the next run exports again (its row is removed, nothing was deleted).
-- * campaign_archives.object_bytes: the object's size in bytes (compressed).

alter table campaign_archives
    add column object_checksum text,
    add column object_bytes bigint;
