//! Reading an archive object back for a restore: decompressed and hashed (SHA-256 of its
//! CSV) as it is read, so the restore checks the rows end to end against the export.

use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::BulkError;
use crate::s3::{self, Location};

/// A reader that hashes what passes through it.
pub(super) struct Hashing<R> {
    inner: R,
    hasher: Arc<Mutex<Sha256>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut hasher) = self.hasher.lock() {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Opens the archive object: its raw (compressed) reader and the hasher that
/// [`decompressed`] feeds.
pub(super) async fn open_archive(
    s3: &aws_sdk_s3::Client,
    location: &Location,
) -> Result<(impl Read + Send + 'static, Arc<Mutex<Sha256>>), BulkError> {
    let (_, reader) = s3::open(s3, location, None, None).await?;
    Ok((reader, Arc::new(Mutex::new(Sha256::new()))))
}

/// The archive's CSV: `raw` decompressed and hashed into `hasher` as it is read. Call it on
/// the blocking thread that reads it (the decoder reads the gzip header at once).
pub(super) fn decompressed<R: Read>(
    raw: R,
    hasher: &Arc<Mutex<Sha256>>,
) -> Hashing<flate2::read::MultiGzDecoder<R>> {
    Hashing {
        inner: flate2::read::MultiGzDecoder::new(raw),
        hasher: Arc::clone(hasher),
    }
}

pub(super) fn digest(hasher: &Arc<Mutex<Sha256>>) -> String {
    hasher
        .lock()
        .map(|h| format!("{:x}", h.clone().finalize()))
        .unwrap_or_default()
}
