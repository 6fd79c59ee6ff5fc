//! Bank-scale data through S3.
//!
//! - [`import`]: customer files (CSV, or gzip-compressed CSV, of any size up to a stated
//!   limit) imported from a bucket, streamed into `COPY`, all rows or none, once per object
//!   version. The `customer-import` function runs it on S3 `ObjectCreated` events;
//!   `offerctl import-customers s3://bucket/key` runs it by hand.
//! - [`archive`]: the deliveries of completed campaigns past their tenant's retention
//!   exported to `archive/<tenant>/<campaign>.csv.gz` with a manifest, verified
//!   by S3's checksum of the stored object, then deleted in batches; restored on demand; and the contact ledger pruned of
//!   rows no contact policy can count. The `housekeeping` function runs it on a schedule;
//!   `offerctl archive run|restore` by hand.
//! - [`s3`]: the S3 client (standard AWS settings; path-style addressing when an endpoint
//!   such as an emulator is set), streamed reads and multipart writes.

pub mod archive;
pub mod import;
pub mod s3;

/// The name the import's metrics and logs carry.
pub const IMPORT_FUNCTION: &str = "customer-import";
/// The name housekeeping's metrics and logs carry.
pub const HOUSEKEEPING_FUNCTION: &str = "housekeeping";

/// A failure that a later attempt may mend: the database, S3, or the stream between them.
/// (A file the import refuses, or an archive that does not verify, is a result, not an
/// error.)
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] shared::ApiError),
    /// S3 failed.
    #[error(transparent)]
    S3(#[from] s3::S3Error),
    /// Reading an object's stream failed.
    #[error("reading the object failed: {0}")]
    Read(std::io::Error),
    /// Stored state contradicts itself (a bug, or a hand edit); the message says how.
    #[error("{0}")]
    Inconsistent(String),
}

impl From<tokio_postgres::Error> for BulkError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Database(err.into())
    }
}

/// This process's peak resident memory so far, in bytes (`VmHWM` of `/proc/self/status`);
/// `None` where there is no such file (not Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
