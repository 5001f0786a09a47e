//! Reading a request body with a size limit.
//!
//! A declared `Content-Length` over the limit is refused before a byte is read; a body without
//! one (chunked) is read until it passes the limit and refused then, so memory per request is
//! bounded by the limit either way.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::error::ApiError;

/// Largest request body the API reads: 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// Read the whole body, refusing anything over `limit` bytes.
pub async fn read<S, B>(stream: S, content_length: Option<u64>, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut out = BytesMut::with_capacity(content_length.map_or(0, |n| n as usize));
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::Unreadable(e.to_string()))?;
        if out.len() + chunk.remaining() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn reads_up_to_the_limit() {
        assert_eq!(read(chunks(&[b"ab", b"cd"]), None, 4).await.unwrap(), Bytes::from_static(b"abcd"));
        assert_eq!(read(chunks(&[]), Some(0), 4).await.unwrap(), Bytes::new());
    }

    #[tokio::test]
    async fn refuses_bodies_over_the_limit() {
        assert!(matches!(
            read(chunks(&[b"ab", b"cde"]), None, 4).await,
            Err(ApiError::TooLarge { limit: 4 })
        ));
        // A declared length is refused before reading.
        assert!(matches!(read(chunks(&[]), Some(5), 4).await, Err(ApiError::TooLarge { limit: 4 })));
    }
}
