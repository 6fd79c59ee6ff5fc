//! Objects written in parts as they are produced (S3 multipart upload), each part with its
//! SHA-256, and the stored object's checksum read back to verify it without reading it.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Location, S3Error};

/// Size of each part of an [`Upload`] (S3's minimum for all parts but the last is 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// An object written in parts as its bytes are produced (S3 multipart upload): a part is
/// sent while the next one collects, so at most two parts ([`PART_BYTES`] each) are held in
/// memory, and the producer waits for S3 only when a part is ready before the one before it
/// was answered. Finish it with [`Upload::complete`]; an upload
/// dropped unfinished leaves no object (only its parts, which the bucket's lifecycle rule
/// for incomplete multipart uploads removes; [`Upload::abort`] removes them at once).
///
/// Each part is sent with its SHA-256 (`x-amz-checksum-sha256`), which S3 checks on receipt
/// (a part whose bytes do not match is refused, `BadDigest`), and the object keeps the
/// composite checksum of its parts ([`Completed::checksum`], what [`stored_checksum`] reads
/// back): S3's documented integrity check for multipart uploads
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>).
pub struct Upload<'a> {
    client: &'a Client,
    location: Location,
    upload_id: String,
    parts: Vec<CompletedPart>,
    buffer: Vec<u8>,
    /// The SHA-256 of the parts' SHA-256s, in order, so far.
    composite: Sha256,
    /// Bytes sent so far.
    bytes: i64,
    /// The part being sent, if any: answers its entry of the completion.
    in_flight: Option<tokio::task::JoinHandle<Result<CompletedPart, S3Error>>>,
}

/// A completed [`Upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The object's ETag (unquoted).
    pub etag: String,
    /// Its composite SHA-256 checksum as S3 reports it: the base64 SHA-256 of the parts'
    /// SHA-256s (binary, concatenated in part order), `-`, the number of parts.
    pub checksum: String,
    /// Its size in bytes.
    pub bytes: i64,
}

impl<'a> Upload<'a> {
    /// Starts a multipart upload of `location`.
    ///
    /// # Errors
    /// [`S3Error`].
    pub async fn start(
        client: &'a Client,
        location: Location,
        content_type: &str,
    ) -> Result<Self, S3Error> {
        let created = client
            .create_multipart_upload()
            .bucket(&location.bucket)
            .key(&location.key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| S3Error::new("CreateMultipartUpload", &location, &e))?;
        Ok(Self {
            client,
            upload_id: created.upload_id().unwrap_or_default().to_owned(),
            location,
            parts: Vec::new(),
            buffer: Vec::with_capacity(PART_BYTES),
            composite: Sha256::new(),
            bytes: 0,
            in_flight: None,
        })
    }

    /// The object being written.
    #[must_use]
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Appends `data`, sending a part whenever [`PART_BYTES`] have collected.
    ///
    /// # Errors
    /// [`S3Error`].
    pub async fn write(&mut self, data: &[u8]) -> Result<(), S3Error> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= PART_BYTES {
            self.send_part().await?;
        }
        Ok(())
    }

    /// Sends the collected bytes as the next part, once the part before it was answered.
    async fn send_part(&mut self) -> Result<(), S3Error> {
        self.finish_in_flight().await?;
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let body = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PART_BYTES),
        ));
        let digest = Sha256::digest(&body);
        self.composite.update(digest);
        let checksum = BASE64.encode(digest);
        self.bytes += i64::try_from(body.len()).unwrap_or(i64::MAX);
        let request = self
            .client
            .upload_part()
            .bucket(&self.location.bucket)
            .key(&self.location.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(&checksum)
            .body(ByteStream::from(body));
        let location = self.location.clone();
        self.in_flight = Some(tokio::spawn(async move {
            let part = request
                .send()
                .await
                .map_err(|e| S3Error::new("UploadPart", &location, &e))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .checksum_sha256(checksum)
                .build())
        }));
        Ok(())
    }

    /// Waits for the part being sent, if any, and records it.
    async fn finish_in_flight(&mut self) -> Result<(), S3Error> {
        if let Some(sending) = self.in_flight.take() {
            let part = sending.await.map_err(|e| S3Error {
                operation: "UploadPart",
                location: self.location.to_string(),
                status: None,
                message: format!("the part's task ended: {e}"),
            })??;
            self.parts.push(part);
        }
        Ok(())
    }

    /// Sends what is left and completes the object; answers its ETag, checksum and size.
    ///
    /// # Errors
    /// [`S3Error`].
    pub async fn complete(mut self) -> Result<Completed, S3Error> {
        if !self.buffer.is_empty() || (self.parts.is_empty() && self.in_flight.is_none()) {
            self.send_part().await?;
        }
        self.finish_in_flight().await?;
        let parts = self.parts.len();
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.location.bucket)
            .key(&self.location.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| S3Error::new("CompleteMultipartUpload", &self.location, &e))?;
        let composite = std::mem::take(&mut self.composite).finalize();
        Ok(Completed {
            etag: done
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned(),
            checksum: format!("{}-{parts}", BASE64.encode(composite)),
            bytes: self.bytes,
        })
    }

    /// Abandons the upload and its parts (best effort: a failure is logged, the bucket's
    /// lifecycle rule removes what is left).
    pub async fn abort(mut self) {
        if let Some(sending) = self.in_flight.take() {
            // Its part is removed with the others; only its end is awaited.
            let _ = sending.await;
        }
        if let Err(err) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.location.bucket)
            .key(&self.location.key)
            .upload_id(&self.upload_id)
            .send()
            .await
        {
            tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(&err), object = %self.location, "abort of a multipart upload failed");
        }
    }
}

/// What S3 holds at `location` by its own account: the composite SHA-256 checksum
/// ([`Completed::checksum`]'s form; `None` when the object has none, e.g. it was written
/// again without one) and the size in bytes; `None` if there is no object (404). A HEAD with
/// `ChecksumMode=ENABLED`: nothing of the object is read.
///
/// # Errors
/// [`S3Error`] if S3 refused or could not be reached.
pub async fn stored_checksum(
    client: &Client,
    location: &Location,
) -> Result<Option<(Option<String>, i64)>, S3Error> {
    let head = match client
        .head_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
    {
        Ok(head) => head,
        Err(e) => {
            let err = S3Error::new("HeadObject", location, &e);
            return if err.status == Some(404) {
                Ok(None)
            } else {
                Err(err)
            };
        }
    };
    let composite = head.checksum_type() != Some(&ChecksumType::FullObject);
    let checksum = head
        .checksum_sha256()
        .filter(|_| composite)
        .map(str::to_owned);
    Ok(Some((checksum, head.content_length().unwrap_or(-1))))
}

/// Whether `reported` (a checksum as [`stored_checksum`] read it) is `expected` (as
/// [`Upload::complete`] computed it, `<base64>-<parts>`). S3 reports the parts' count as a
/// suffix; an S3-compatible server that leaves it out (the moto emulator of the tests) is
/// compared on the digest alone, which covers every part's SHA-256 in order.
#[must_use]
pub fn checksum_matches(reported: &str, expected: &str) -> bool {
    let Some((digest, _)) = expected.rsplit_once('-') else {
        return false;
    };
    reported == expected || reported == digest
}

#[cfg(test)]
mod tests {
    use super::checksum_matches;

    #[test]
    fn a_checksum_matches_with_or_without_the_parts_suffix_and_nothing_else() {
        let expected = "O5wWI/5ePWShPWvSo+pqG0BZDb/nzE5N7W7edAFIOeA=-3";
        assert!(checksum_matches(expected, expected));
        // The moto emulator reports the digest without S3's `-<parts>`.
        assert!(checksum_matches(
            "O5wWI/5ePWShPWvSo+pqG0BZDb/nzE5N7W7edAFIOeA=",
            expected
        ));
        assert!(!checksum_matches(
            "O5wWI/5ePWShPWvSo+pqG0BZDb/nzE5N7W7edAFIOeA=-2",
            expected
        ));
        assert!(!checksum_matches(
            "P5wWI/5ePWShPWvSo+pqG0BZDb/nzE5N7W7edAFIOeA=-3",
            expected
        ));
        assert!(!checksum_matches("", expected));
        assert!(!checksum_matches(expected, "no suffix"));
    }
}
